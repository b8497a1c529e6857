"""Prompt: tokens, top-k next-token predictions at each position, per-token loss."""

from __future__ import annotations

import streamlit as st

from components import compare, diff_panels, shell, snippets, state, widgets, windows
from components.prompt_figures import predictions_figure, predictions_table, tokens_html
from engine.schemas.analyses import PredictionsResult

link = shell.engine_link()
prompt = state.get("prompt")
st.title("Prompt")
cmp = compare.current()
side = compare.side_toggle()  # compare mode: A, B or the difference (KL, changed predictions)
if side == "diff":
    diff_panels.tokens_panel(link.client, prompt, cmp, windows.PROMPT, key="prompt_diff")
    st.stop()
prompt, slot = cmp.run_on(side, prompt)
top_k = st.slider("Predictions shown per position (top-k)", 1, 10, 5)


def predictions(start: int, width: int) -> PredictionsResult:
    """Every token and its loss, and the top-k after the positions `start` on (`width`)."""
    return shell.call(
        compare.analyze,
        link.client,
        "predictions",
        prompt,
        slot,
        top_k=top_k,
        start=start,
        width=width,
    )


strip = st.container()  # the tokens and their loss, drawn once the predictions are in
tokens = shell.call(
    compare.tokenize, link.client, prompt, slot
).tokens  # the window needs their number
pos = state.clamp_pos(len(tokens))
window = widgets.position_window(len(tokens), windows.PROMPT, pos)
pos = widgets.position_picker(tokens, pos, window)
result = predictions(window[0], windows.PROMPT)  # the prompt's run is kept: a few ms each
at_pos = result if window[0] <= pos < window[1] else predictions(pos, 1)
with strip:
    st.markdown(tokens_html(tokens, result.loss, pos), unsafe_allow_html=True)
    mean = result.mean_loss
    st.caption(
        f"{len(tokens)} tokens (BOS first)"
        + (f" · mean loss {mean:.3f} nats" if mean is not None else "")
        + " · hover a token for its position, id and loss"
    )

fig = predictions_figure(result, selected_pos=pos, window=window)
widgets.figure(
    fig,
    name="prompt_predictions",
    params={"top_k": top_k, "pos": pos},
    on_click=lambda p: {"pos": int(p["x"])} if "x" in p else {},
    bundle=snippets.predictions(result, top_k),
    **compare.figure_side(link.client, side, prompt),
)
left, right = st.columns([2, 3])
with left:
    st.markdown(f"**After position {pos}** (`{tokens[pos].text.replace('`', 'ˋ')}`): top-{top_k}")
    st.dataframe(
        predictions_table(at_pos, pos),
        hide_index=True,
        column_config={
            "probability": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.3f")
        },
    )
