"""Attention: a layer x head overview of head scores, head patterns, and a layer in circuitsvis."""

from __future__ import annotations

import streamlit as st

from components import compare as ab  # compare mode; `compare` here is the second head
from components import diff_panels, diff_snippets, shell, snippets, state, widgets, windows
from components.attention_figures import (
    head_key,
    head_label,
    head_scores_figure,
    overview_figure,
    parse_head,
    pattern_block,
    patterns_figure,
    score_of,
    scores_table,
)
from components.diff_figures import pattern_diff_figure
from components.windows import centred_on
from engine.schemas.arrays import unpack

link = shell.engine_link()
prompt = state.get("prompt")
model = st.session_state["capabilities"].model
st.title("Attention")
cmp = ab.current()
side = ab.side_toggle()  # compare mode: A, B, or a head's pattern B − A
prompt_a = prompt
prompt, slot = cmp.run_on("a" if side == "diff" else side, prompt)
on_side = ab.figure_side(link.client, side, prompt) if side == "b" else {}
model = on_side.get("model_info") or model
n_layers, n_heads = model.n_layers, model.n_heads

scores = shell.call(ab.analyze, link.client, "head_scores", prompt, slot)
tokens = scores.tokens
pos = state.clamp_pos(len(tokens))
layer, head = state.clamp("layer", n_layers), state.clamp("head", n_heads)
heads = [head_key(la, h) for la in range(n_layers) for h in range(n_heads)]
if state.get("compare") not in heads:
    state.put(compare=None)
names = [s.name for s in scores.scores]
if state.get("score") not in names:
    state.put(score=names[0])


def set_head() -> None:
    state.put(**dict(zip(("layer", "head"), parse_head(st.session_state["w_head_a"]), strict=True)))


c1, c2, c3, c4 = st.columns([5, 2, 1.2, 1.2])
score = widgets.bound(
    "score", c1.segmented_control, "Head score", options=names,
    format_func=lambda n: score_of(scores, n).label.split(" (")[0],
) or names[0]  # fmt: skip
click_sets = c2.segmented_control(
    "A click in the overview sets", ["head", "comparison"], default="head", key="w_click"
)
st.session_state["w_head_a"] = head_key(layer, head)
c3.selectbox("Head", heads, key="w_head_a", format_func=head_label, on_change=set_head)
compare = widgets.bound(
    "compare", c4.selectbox, "Compare with", options=[None, *heads], format_func=head_label,
    placeholder="none",
)  # fmt: skip
shown = [(layer, head)] + ([parse_head(compare)] if compare else [])


def clicked(p: dict) -> dict:
    if "x" not in p or "y" not in p:
        return {}
    if click_sets == "comparison":
        return {"compare": head_key(int(p["y"]), int(p["x"]))}
    return {"layer": int(p["y"]), "head": int(p["x"])}


left, right = st.columns([3, 2], gap="large")
with left:
    second = shown[1] if len(shown) > 1 else None
    fig = head_scores_figure(scores, score, selected=shown[0], compare=second)
    widgets.figure(
        fig, name="attention_head_scores", params={"score": score}, on_click=clicked,
        bundle=snippets.head_scores(scores, score), **on_side,
    )  # fmt: skip
with right:
    st.markdown("**Scores of the selected heads on this prompt**")
    st.dataframe(scores_table(scores, shown), hide_index=True)
    for s in scores.scores:
        note = f" (none: {s.reason})" if s.values is None else ""
        st.caption(f"**{s.label}**: {s.description}{note}")

st.subheader("Attention pattern" + (" (side by side)" if compare else ""))
n_tokens = len(tokens)
start, stop = widgets.position_window(n_tokens, windows.ATTENTION, pos)
answers = [
    shell.call(ab.analyze, link.client, "attention_pattern", prompt, slot, layer=la, head=h,
               start=start, width=windows.ATTENTION, overview=windows.OVERVIEW)
    for la, h in shown
]  # fmt: skip
if side == "diff":  # the same head on side B, drawn as B − A
    prompt_b, slot_b = cmp.run_on("b", prompt_a)
    side_b = diff_panels.side_code(link.client, cmp)
    for (la, h), a_res in zip(shown, answers, strict=True):
        b_res = shell.call(ab.analyze, link.client, "attention_pattern", prompt_b, slot_b,
                           layer=la, head=h, start=start, width=windows.ATTENTION,
                           overview=windows.OVERVIEW)  # fmt: skip
        if b_res.n_tokens != a_res.n_tokens:
            st.warning("Prompt B has another number of tokens: patterns compare position by "
                       "position, so there is no difference to draw.")  # fmt: skip
            st.stop()
        widgets.figure(
            pattern_diff_figure(a_res.tokens, unpack(a_res.pattern).tolist(),
                                unpack(b_res.pattern).tolist(), start=start,
                                head=head_label(head_key(la, h)), selected_pos=pos),
            name=f"attention_diff_L{la}H{h}", params={"head": f"L{la}H{h}", "pos": pos},
            on_click=lambda p: {"pos": int(p["y"])} if "y" in p else {},
            bundle=diff_snippets.pattern_diff(la, h, start, a_res, b_res, side_b),
        )  # fmt: skip
    st.caption("Side B's pattern minus side A's, position by position (the same head of both "
               "models, or of the two prompts); the head scores above are side A's.")  # fmt: skip
    st.stop()
blocks = [pattern_block(a) for a in answers]
window_tokens = answers[0].tokens
st.caption(
    "Rows are queries, columns the keys they attend to. Click a row to select that position."
    + (" The ◀ column: attention to every key before the window." if start else "")
)
pat_col, over_col = st.columns([3, 1]) if n_tokens > windows.ATTENTION else (st.container(), None)
with pat_col:
    widgets.figure(
        patterns_figure(window_tokens, blocks, start=start, selected_pos=pos),
        name="attention_patterns",
        params={
            "heads": ", ".join(b[0] for b in blocks),
            "pos": pos,
            "positions": f"{start}-{stop - 1}",
        },
        on_click=lambda p: {"pos": int(p["y"])} if "y" in p else {},
        bundle=snippets.patterns(shown, [b[1] for b in blocks], window_tokens, start),
        **on_side,
    )
if over_col is not None:
    with over_col:
        first = answers[0]
        widgets.figure(
            overview_figure(blocks[0][0], unpack(first.overview), first.overview_stride,
                            n_tokens, (start, stop)),
            name="attention_overview", params={"head": blocks[0][0]},
            on_click=lambda p: {"wstart": centred_on(int(p["x"]), n_tokens, windows.ATTENTION)}
            if "x" in p else {},
        )  # fmt: skip

st.subheader(f"All heads of layer {layer}")
st.caption("circuitsvis: hover a head to enlarge it, click to lock it; hover a token for its row.")
layer_res = shell.call(
    ab.analyze, link.client, "attention_layer", prompt, slot, layer=layer,
    start=max(start, stop - windows.CIRCUITSVIS), width=windows.CIRCUITSVIS,
)  # the last positions of the pattern's window  # fmt: skip
if layer_res.n_tokens > windows.CIRCUITSVIS:
    st.caption(f"Positions {layer_res.start} to {layer_res.stop - 1} of {n_tokens}.")
widgets.attention_heads(layer_res.tokens, unpack(layer_res.patterns), layer)
