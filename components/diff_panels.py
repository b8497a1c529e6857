"""The diff panels the Diff page and the views' *difference* side share (Streamlit widgets
around the pure figures of ``components.diff_figures``): per-token KL with the changed
predictions, and the residual difference with its lens."""

from __future__ import annotations

import streamlit as st

from components import compare, diff_snippets, shell, state, widgets
from components import diff_figures as dfig
from components.compare import Comparison
from components.safe import md
from components.theme import show_token
from engine.client import EngineClient, EngineRequestError
from engine.schemas.common import TokenInfo
from engine.schemas.diff import DiffComponentsResult, DiffResidResult, DiffTokensResult

TOP_K = 8  # predictions of each side at a position
LENS_K = 6  # tokens of the difference lens per residual stream read


def side_code(client: EngineClient, cmp: Comparison) -> str:
    """The bundles' snippet lines that run side B (model B as the engine loaded it)."""
    info = compare.model_info(client, compare.SLOT_B) if cmp.model_b else None
    return diff_snippets.side_b(cmp, info)


def labels(cmp: Comparison) -> tuple[str, str]:
    caps = st.session_state.get("capabilities")
    name = caps.model.name if caps is not None and caps.model else "A"
    return cmp.label("a", name), cmp.label("b")


def tokens_panel(
    client: EngineClient, prompt: str, cmp: Comparison, width: int, *, key: str = "diff"
) -> tuple[list[TokenInfo], int, DiffTokensResult]:
    """The KL strip over the window (a click selects a position), a position picker, and the
    changed predictions at the selected position. Returns (tokens, pos, the window's answer)."""
    tokens = shell.call(client.tokenize, prompt).tokens
    pos = state.clamp_pos(len(tokens))
    start, _ = widgets.position_window(len(tokens), width, pos)
    kl = shell.call(compare.pair, client, "diff_tokens", prompt, cmp, top_k=TOP_K, start=start,
                    width=width)  # fmt: skip
    window_kl = kl.kl[kl.start : kl.stop]
    widgets.figure(
        dfig.kl_strip_figure(dfig.pair_tokens(kl.tokens, kl.tokens_b)[kl.start : kl.stop],
                             window_kl, start=kl.start, selected_pos=pos),
        name=f"{key}_kl", params={"positions": f"{kl.start}-{kl.stop - 1}"},
        on_click=lambda p: {"pos": int(p["x"])} if "x" in p else {},
        bundle=diff_snippets.kl_tokens(kl, side_code(client, cmp)),
    )  # fmt: skip
    if kl.top_changes:
        top = kl.top_changes[0]
        st.caption(
            f"Largest KL over the prompt after pos {top.pos} "
            f"({show_token(tokens[top.pos].text)}): {top.kl:.3f} nats, A predicts "
            f"{show_token(top.top_a.text)}, B {show_token(top.top_b.text)} · mean "
            f"{kl.mean_kl:.3f} nats. Click a bar to select a position."
        )
    pos = widgets.position_picker(tokens, pos, (kl.start, kl.stop))
    at = kl if kl.start <= pos < kl.stop else shell.call(
        compare.pair, client, "diff_tokens", prompt, cmp, top_k=TOP_K, start=pos, width=1
    )  # fmt: skip
    i = pos - at.start
    left, right = st.columns([3, 2], gap="large")
    with left:
        widgets.figure(
            dfig.changed_predictions_figure(at.top_a[i], at.top_b[i], pos=pos,
                                            token=tokens[pos].text, labels=labels(cmp)),
            name=f"{key}_predictions", params={"pos": pos},
            bundle=diff_snippets.changed_predictions(at, i, side_code(client, cmp)),
        )  # fmt: skip
    with right:
        st.markdown(f"**Changed predictions after pos {pos}**")
        st.dataframe(dfig.changed_table(at.top_a[i], at.top_b[i]), hide_index=True)
        st.caption(
            f"KL(A ‖ B) here: {at.kl[pos]:.3f} nats · A's top token is rank {at.rank_in_b[i]} on B"
        )
    return tokens, pos, kl


def resid_panel(
    client: EngineClient, prompt: str, cmp: Comparison, tokens: list[TokenInfo], pos: int,
    width: int, *, key: str = "diff",
) -> DiffResidResult:  # fmt: skip
    """‖resid_B − resid_A‖ per residual stream read and position (a click selects both), and
    the difference lens at the selected position."""
    start, _ = widgets.position_window(len(tokens), width, pos)
    res = shell.call(compare.pair, client, "diff_resid", prompt, cmp, pos=pos, top_k=LENS_K,
                     start=start, width=width)  # fmt: skip
    rows = res.rows
    row = min(max(state.get("layer") or 0, 0), len(rows) - 1)
    a, b = st.columns([3, 2], gap="large")
    with a:
        widgets.figure(
            dfig.resid_norms_figure(rows, res.norm, res.tokens,
                                    start=res.start, selected=(row, pos)),
            name=f"{key}_resid_norms", params={"pos": pos},
            on_click=lambda p: {"pos": int(p["x"]), "layer": int(p["y"])} if "y" in p else {},
            bundle=diff_snippets.resid_norms(res, side_code(client, cmp)),
        )  # fmt: skip
    with b:
        widgets.figure(
            dfig.diff_lens_figure(rows, res.lens_up, pos=res.pos,
                                  token=tokens[res.pos].text),
            name=f"{key}_lens", params={"pos": res.pos},
            bundle=diff_snippets.diff_lens(res, side_code(client, cmp)),
        )  # fmt: skip
    st.caption(
        "The lens of a difference reads W_U · (resid_B − resid_A) without the final layer norm: "
        "a difference of two streams has no scale of its own to normalise by."
    )
    return res


def components_panel(
    client: EngineClient, prompt: str, cmp: Comparison, pos: int, target, baseline
) -> DiffComponentsResult:
    """Each head's and each layer's direct effect on the target logit on A and on B, and the
    change (``diff_components``)."""
    res = shell.call(compare.pair, client, "diff_components", prompt, cmp, pos=pos,
                     target=target, baseline=baseline)  # fmt: skip
    heads_a, heads_b = res.a.heads, res.b.heads
    n_heads = len(heads_a[0]) if heads_a else 1
    layer = min(max(state.get("layer") or 0, 0), len(heads_a) - 1)
    head = min(max(state.get("head") or 0, 0), n_heads - 1)
    target_text = res.target.text
    left, right = st.columns([1, 1], gap="large")
    with left:
        widgets.figure(
            dfig.heads_change_figure(heads_a, heads_b, target=target_text,
                                     selected=(layer, head)),
            name="dla_diff_heads", params={"pos": pos, "target": repr(target_text)},
            on_click=lambda p: {"layer": int(p["y"]), "head": int(p["x"])} if "y" in p else {},
            bundle=diff_snippets.components(res, side_code(client, cmp)),
        )  # fmt: skip
    with right:
        widgets.figure(
            dfig.terms_change_figure(dfig.component_terms(res), target=target_text),
            name="dla_diff_terms", params={"pos": pos, "target": repr(target_text)},
            bundle=diff_snippets.components(res, side_code(client, cmp)),
        )  # fmt: skip
    st.caption(
        f"Each component's direct effect on {res.metric} at pos {pos}, read on A and on B "
        f"(each through its own final layer norm scale); hover a head for both values. The "
        f"model's value moves by {res.model_value_delta:+.3f}. Largest changes: "
        + ", ".join(f"{c.name} {c.delta:+.2f}" for c in res.top_changes[:6])
    )
    return res


def latent_rows(
    client: EngineClient, prompt: str, sae: str, rows: list[dict], *, key: str = "prompt"
) -> None:
    """One line per changed latent: label, A → B, an example (its own shipped top example
    when the row has none), and links to its latent panel and to steering it on A or on B."""
    for row in rows:
        example = row.get("example") or _shipped_example(client, prompt, sae, row["index"])
        c1, c2, c3, c4 = st.columns([5, 1.2, 1.2, 1.2], vertical_alignment="center")
        c1.markdown(
            f"**#{row['index']}** {md(row.get('label') or '(no label)')} · A {row['a']:.3g} → "
            f"B {row['b']:.3g}" + (f" · at pos {row['pos']}" if row.get("pos") is not None else "")
            + (f"  \n:gray[e.g. {md(example[:120])}]" if example else "")
        )  # fmt: skip
        c2.link_button("Panel", compare.link("latents", sae=sae, latent=row["index"]),
                       icon=":material/scatter_plot:", help="this latent's panel (SAE latents)")  # fmt: skip
        for col, side in ((c3, "a"), (c4, "b")):
            col.link_button(
                f"Steer {side.upper()}",
                compare.link("steering", side=side, add_latent=f"sae:{sae}:{row['index']}"),
                icon=":material/tune:", help=f"steer model {side.upper()} with this latent",
            )  # fmt: skip


def _shipped_example(client: EngineClient, prompt: str, sae: str, index: int) -> str | None:
    """The latent's strongest shipped example (its text), when it has one."""
    try:
        d = client.analyze("latent_detail", prompt, sae=sae, index=index)
    except EngineRequestError:
        return None
    return "".join(d.examples[0].tokens) if d.examples else None
