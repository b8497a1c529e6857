"""Direct logit attribution: each head's, MLP's and embedding's direct effect on one logit."""

from __future__ import annotations

import streamlit as st

from components import compare, diff_panels, shell, snippets, state, token_refs, widgets, windows
from components.dla_figures import bar_terms, heads_figure, terms_figure

link = shell.engine_link()
prompt = state.get("prompt")
model = st.session_state["capabilities"].model
st.title("Direct logit attribution")
cmp = compare.current()
side = compare.side_toggle()  # compare mode: A, B, or each component's change (B − A)
prompt, slot = cmp.run_on("a" if side == "diff" else side, prompt)
on_side = compare.figure_side(link.client, side, prompt) if side == "b" else {}
model = on_side.get("model_info") or model

tokens = shell.call(compare.tokenize, link.client, prompt, slot).tokens
pos = state.clamp_pos(len(tokens))
pos = widgets.position_picker(
    tokens, pos, widgets.position_window(len(tokens), windows.PROMPT, pos)
)
preds = shell.call(compare.analyze, link.client, "predictions", prompt, slot, top_k=8, start=pos,
                   width=1)  # fmt: skip
suggestions = {p.id: p.text for p in preds.top[0]}
a, b = st.columns(2)
with a:
    target = widgets.token_choice(
        "target", "Target token (pick or type: ·Paris, #123)", suggestions,
        default="the model's prediction",
    )  # fmt: skip
with b:
    baseline = widgets.token_choice(
        "baseline", "Minus a baseline token (logit difference)", suggestions,
        default="none: attribute the logit itself",
    )  # fmt: skip


def wire(ref: str | None) -> str | int | None:
    return token_refs.to_wire(ref) if ref else None


if side == "diff":
    diff_panels.components_panel(link.client, prompt, cmp, pos, wire(target), wire(baseline))
    st.stop()
res = shell.call(
    compare.analyze,
    link.client,
    "dla",
    prompt,
    slot,
    pos=pos,
    target=wire(target),
    baseline=wire(baseline),
)
layer = state.clamp("layer", model.n_layers)
head = state.clamp("head", model.n_heads)
params = {"pos": pos, "target": repr(res.target.text)}
if res.baseline:
    params["baseline"] = repr(res.baseline.text)
left, right = st.columns([1, 1], gap="large")
with left:
    widgets.figure(
        heads_figure(res, selected=(layer, head)),
        name="dla_heads",
        params=params,
        on_click=lambda p: {"layer": int(p["y"]), "head": int(p["x"])} if "y" in p else {},
        bundle=snippets.dla_heads(res),
        **on_side,
    )
with right:
    widgets.figure(
        terms_figure(res, selected_layer=layer), name="dla_terms", params=params,
        bundle=snippets.dla_terms(res, bar_terms(res) + [("total", res.total)]), **on_side,
    )  # fmt: skip
st.caption(
    f"Each term is the component's output at pos {pos}, centred and divided by the final layer "
    f"norm's scale there ({res.ln_scale:.4g}), dotted with the unembedding direction; the "
    "terms sum to what the model outputs. Click a head to select it in every view."
)
