"""The diff panels the Diff page and the views' *difference* side share (Streamlit widgets
around the pure figures of ``components.diff_figures``): per-token KL with the changed
predictions, and the residual difference with its lens."""

from __future__ import annotations

import streamlit as st

from components import compare, diff_snippets, shell, state, widgets
from components import diff_figures as dfig
from components.compare import Comparison
from components.theme import show_token
from engine.client import EngineClient

TOP_K = 8  # predictions of each side at a position
LENS_K = 6  # tokens of the difference lens per residual stream read


def labels(cmp: Comparison) -> tuple[str, str]:
    name = ((st.session_state.get("capabilities") or {}).get("model") or {}).get("name", "A")
    return cmp.label("a", name), cmp.label("b")


def tokens_panel(
    client: EngineClient, prompt: str, cmp: Comparison, width: int, *, key: str = "diff"
) -> tuple[list[dict], int, dict]:
    """The KL strip over the window (a click selects a position), a position picker, and the
    changed predictions at the selected position. Returns (tokens, pos, the window's answer)."""
    tokens = shell.call(client.tokenize, prompt)["tokens"]
    pos = state.clamp_pos(len(tokens))
    start, _ = widgets.position_window(len(tokens), width, pos)
    kl = shell.call(compare.pair, client, "diff_tokens", prompt, cmp, top_k=TOP_K, start=start,
                    width=width)  # fmt: skip
    top = dfig.top_position(kl["kl"], kl["start"])
    widgets.figure(
        dfig.kl_strip_figure(kl["tokens"][kl["start"] : kl["stop"]], kl["kl"], start=kl["start"],
                             selected_pos=pos),
        name=f"{key}_kl", params={"positions": f"{kl['start']}-{kl['stop'] - 1}"},
        on_click=lambda p: {"pos": int(p["x"])} if "x" in p else {},
        bundle=diff_snippets.kl_tokens(kl, cmp),
    )  # fmt: skip
    if top is not None:
        st.caption(
            f"Largest KL in the window at pos {top} ({show_token(tokens[top]['text'])}): "
            f"{kl['kl'][top - kl['start']]:.3f} nats. Click a bar to select a position."
        )
    pos = widgets.position_picker(tokens, pos, (kl["start"], kl["stop"]))
    at = kl if kl["start"] <= pos < kl["stop"] else shell.call(
        compare.pair, client, "diff_tokens", prompt, cmp, top_k=TOP_K, start=pos, width=1
    )  # fmt: skip
    i = pos - at["start"]
    left, right = st.columns([3, 2], gap="large")
    with left:
        widgets.figure(
            dfig.changed_predictions_figure(at["top_a"][i], at["top_b"][i], pos=pos,
                                            token=tokens[pos]["text"], labels=labels(cmp)),
            name=f"{key}_predictions", params={"pos": pos},
            bundle=diff_snippets.changed_predictions(at, i, cmp),
        )  # fmt: skip
    with right:
        st.markdown(f"**Changed predictions after pos {pos}**")
        st.dataframe(dfig.changed_table(at["top_a"][i], at["top_b"][i]), hide_index=True)
        rank = at["rank_b"][i]
        st.caption(
            f"KL(A ‖ B) here: {at['kl'][i]:.3f} nats · A's top token is "
            + (f"rank {rank + 1} on B" if rank is not None else "outside B's top ranks")
        )
    return tokens, pos, kl


def resid_panel(
    client: EngineClient, prompt: str, cmp: Comparison, tokens: list[dict], pos: int, width: int,
    *, key: str = "diff",
) -> dict:  # fmt: skip
    """‖resid_B − resid_A‖ per residual stream read and position (a click selects both), and
    the difference lens at the selected position."""
    start, _ = widgets.position_window(len(tokens), width, pos)
    res = shell.call(compare.pair, client, "diff_resid", prompt, cmp, pos=pos, top_k=LENS_K,
                     start=start, width=width)  # fmt: skip
    rows = res["rows"]
    row = min(max(state.get("layer") or 0, 0), len(rows) - 1)
    a, b = st.columns([3, 2], gap="large")
    with a:
        widgets.figure(
            dfig.resid_norms_figure(rows, res["norms"], res["tokens"][res["start"] : res["stop"]],
                                    start=res["start"], selected=(row, pos)),
            name=f"{key}_resid_norms", params={"pos": pos},
            on_click=lambda p: {"pos": int(p["x"]), "layer": int(p["y"])} if "y" in p else {},
            bundle=diff_snippets.resid_norms(res, cmp),
        )  # fmt: skip
    with b:
        widgets.figure(
            dfig.diff_lens_figure(rows, res["lens"], pos=res["pos"],
                                  token=tokens[res["pos"]]["text"]),
            name=f"{key}_lens", params={"pos": res["pos"]},
            bundle=diff_snippets.diff_lens(res, cmp),
        )  # fmt: skip
    st.caption(
        "The lens of a difference reads W_U · (resid_B − resid_A) without the final layer norm: "
        "a difference of two streams has no scale of its own to normalise by."
    )
    return res


def components_panel(
    client: EngineClient, prompt: str, cmp: Comparison, pos: int, target, baseline
) -> dict:
    """Each head's and each layer's direct effect on the target logit on A and on B, and the
    change (``diff_components``)."""
    res = shell.call(compare.pair, client, "diff_components", prompt, cmp, pos=pos,
                     target=target, baseline=baseline)  # fmt: skip
    n_heads = len(res["heads_a"][0]) if res["heads_a"] else 1
    layer = min(max(state.get("layer") or 0, 0), len(res["heads_a"]) - 1)
    head = min(max(state.get("head") or 0, 0), n_heads - 1)
    target_text = res["target"]["text"]
    left, right = st.columns([1, 1], gap="large")
    with left:
        widgets.figure(
            dfig.heads_change_figure(res["heads_a"], res["heads_b"], target=target_text,
                                     selected=(layer, head)),
            name="dla_diff_heads", params={"pos": pos, "target": repr(target_text)},
            on_click=lambda p: {"layer": int(p["y"]), "head": int(p["x"])} if "y" in p else {},
            bundle=diff_snippets.components(res, cmp),
        )  # fmt: skip
    with right:
        widgets.figure(
            dfig.terms_change_figure(dfig.component_terms(res), target=target_text),
            name="dla_diff_terms", params={"pos": pos, "target": repr(target_text)},
            bundle=diff_snippets.components(res, cmp),
        )  # fmt: skip
    st.caption(
        f"Each component's direct effect on the target's logit at pos {pos}, read on A and on B "
        "(each through its own final layer norm scale); hover a head for both values."
    )
    return res
