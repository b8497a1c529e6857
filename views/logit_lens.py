"""Logit lens: the top token of every residual stream, and chosen tokens down the layers."""

from __future__ import annotations

import streamlit as st

from components import compare, diff_panels, shell, snippets, state, token_refs, widgets, windows
from components.lens_figures import final_top, lens_figure, traces_figure

STAGES = ["resid_pre", "resid_mid", "resid_post"]

link = shell.engine_link()
prompt = state.get("prompt")
st.title("Logit lens")
cmp = compare.current()
side = compare.side_toggle()  # compare mode: A, B, or the residual difference and its lens
if side == "diff":
    toks = shell.call(link.client.tokenize, prompt).tokens
    diff_panels.resid_panel(link.client, prompt, cmp, toks, state.clamp_pos(len(toks)),
                            windows.LENS, key="lens_diff")  # fmt: skip
    st.stop()
prompt, slot = cmp.run_on(side, prompt)
on_side = compare.figure_side(link.client, side, prompt)
if state.get("stage") not in STAGES:
    state.put(stage="resid_post")
stage = widgets.bound("stage", st.segmented_control, "Residual stream read", options=STAGES)
stage = stage or "resid_post"

tokens = shell.call(compare.tokenize, link.client, prompt, slot).tokens
n_tokens = len(tokens)
pos = state.clamp_pos(n_tokens)
start, stop = widgets.position_window(n_tokens, windows.LENS, pos)
grid = shell.call(
    compare.analyze, link.client, "logit_lens", prompt, slot, stage=stage, top_k=5, start=start,
    width=windows.LENS,
)  # fmt: skip
layer = state.get("layer")
st.caption("Click a cell to select its position and layer; hover it for the top 5 tokens.")
widgets.figure(
    lens_figure(grid, selected_pos=pos, selected_layer=layer),
    name="logit_lens",
    params={"stage": stage, "pos": pos},
    on_click=lambda p: (
        {"pos": int(p["x"]), "layer": grid.row_layers[int(p["y"])]} if "y" in p else {}
    ),
    bundle=snippets.logit_lens(grid),
    **on_side,
)

st.subheader("Tokens down the layers")
pos = widgets.position_picker(tokens, pos, (grid.start, grid.stop))
final = final_top(grid, pos)
chosen = widgets.token_choice(
    "targets", "Tokens to follow (pick or type: ·Paris, #123)", final,
    default="the model's prediction", multi=True,
)  # fmt: skip
traces = shell.call(
    compare.analyze, link.client, "logit_lens_targets", prompt, slot, stage=stage, pos=pos,
    targets=[token_refs.to_wire(r) for r in chosen],
)  # fmt: skip
names = ", ".join(t.token.text for t in traces.traces)
widgets.figure(
    traces_figure(traces),
    name="logit_lens_targets",
    params={"stage": stage, "pos": pos, "targets": repr(names)},
    bundle=snippets.lens_targets(traces),
    **on_side,
)
