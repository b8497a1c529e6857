"""Figures of model diffing (issue 14): the Diff page and the views' difference side.

Pure functions of the engine's pair analyses (``diff_tokens``, ``diff_resid``,
``diff_components``, ``diff_latents``), its jobs (``adiff_lens``) and the side-by-side
generation; each figure carries its numbers (hover, text) so tests read them back.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.dla_figures import bar_terms
from components.heatmaps import add_click_grid, cell, token_ticks
from components.safe import plot_text
from components.theme import ACCENT, DIVERGING, SEQUENTIAL, apply, show_token
from engine.schemas.analyses import Prediction
from engine.schemas.common import TokenInfo
from engine.schemas.diff import DiffComponentsResult, DiffToken
from engine.schemas.diff_latents import AdiffLensResult, DiffLatentsResult, LatentDiffSetResult

A_COLOR, B_COLOR, GREY = "#1f77b4", "#d62728", "#9e9e9e"


def _tok(text: str) -> str:
    return plot_text(show_token(text))


def _texts(tokens: list) -> list[str]:
    """Each token's text (the engine's ``TokenInfo`` or the text itself)."""
    return [t if isinstance(t, str) else t.text for t in tokens]


def pair_tokens(tokens: list[TokenInfo], tokens_b: list[TokenInfo] | None) -> list[str]:
    """Each position's token; "A→B" where prompt B has another token there."""
    if not tokens_b:
        return _texts(tokens)
    return [a.text if a.text == b.text else f"{a.text}→{b.text}"
            for a, b in zip(tokens, tokens_b, strict=True)]  # fmt: skip


def top_position(kls: list[float | None], start: int = 0) -> int | None:
    """The position (absolute) with the largest KL, None when there is none."""
    best = max(((v, i) for i, v in enumerate(kls) if v is not None), default=None)
    return None if best is None else start + best[1]


# --- per-token KL ---------------------------------------------------------------------------
def kl_strip_figure(
    tokens: list, kls: list[float | None], *, start: int = 0, selected_pos: int | None = None,
    title: str = "KL(A ‖ B) of the next-token distribution after each token",
    subtitle: str = "click a bar to select its position",
) -> go.Figure:  # fmt: skip
    """One bar per position of the window: KL(A || B) of the next token after it; the top
    position is outlined, the selected one marked. `tokens` are the window's."""
    texts = _texts(tokens)
    xs = list(range(start, start + len(kls)))
    top = top_position(kls, start)
    colors = [ACCENT if x == top else A_COLOR for x in xs]
    if selected_pos is not None and start <= selected_pos < start + len(kls):
        colors[selected_pos - start] = "#111"
    fig = go.Figure(
        go.Bar(
            x=xs, y=[v if v is not None else 0 for v in kls], marker_color=colors,
            text=[("max " if x == top else "") + (f"{v:.2f}" if v is not None else "")
                  for x, v in zip(xs, kls, strict=True)], textposition="outside",
            customdata=[_tok(t) for t in texts],
            hovertemplate="pos %{x} (%{customdata}): KL %{y:.4f} nats<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(**token_ticks(texts, start=start), tickangle=-60)
    top_v = max((v for v in kls if v is not None), default=0.0)
    fig.update_yaxes(title="KL (nats)", range=[0, 1.15 * top_v if top_v > 0 else 1])
    fig.update_layout(
        title=dict(text=title, subtitle=dict(text=subtitle)), height=360, bargap=0.15,
        clickmode="event+select",
    )  # fmt: skip
    return apply(fig)


def changed_predictions_figure(
    top_a: list[Prediction],
    top_b: list[Prediction],
    *,
    pos: int,
    token: str,
    labels: tuple[str, str],
) -> go.Figure:
    """A's and B's top next tokens after `pos`, side by side (probabilities)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=labels, horizontal_spacing=0.18)
    for col, (top, color) in enumerate(((top_a, A_COLOR), (top_b, B_COLOR)), start=1):
        names = [_tok(p.text) for p in top][::-1]
        probs = [p.prob for p in top][::-1]
        fig.add_bar(
            x=probs, y=[f"{n} " for n in names], orientation="h", marker_color=color,
            text=[f"{p:.3f}" for p in probs], textposition="outside", showlegend=False,
            hovertemplate="%{y}: p = %{x:.4f}<extra></extra>", row=1, col=col,
        )  # fmt: skip
        fig.update_xaxes(range=[0, 1.35], title="probability", row=1, col=col)
    fig.update_layout(
        title=dict(text=f"Top next tokens after pos {pos} ({_tok(token)})"),
        margin_t=90,
        height=120 + 34 * max(len(top_a), len(top_b), 1),
    )  # fmt: skip
    return apply(fig)


def changed_table(top_a: list[Prediction], top_b: list[Prediction]) -> list[dict]:
    """Rows for a table: every token in either top-k, its probability on A and B (None where
    it is outside that side's top-k) and the change, largest change first."""
    pa = {p.id: p for p in top_a}
    pb = {p.id: p for p in top_b}
    rows = []
    for tid in dict.fromkeys([*pa, *pb]):
        a, b = pa.get(tid), pb.get(tid)
        text = (a or b).text
        row = {"token": show_token(text), "id": tid, "p_A": a.prob if a else None,
               "p_B": b.prob if b else None}  # fmt: skip
        row["change"] = (row["p_B"] or 0.0) - (row["p_A"] or 0.0)
        rows.append(row)
    return sorted(rows, key=lambda r: -abs(r["change"]))


# --- residual difference --------------------------------------------------------------------
def resid_norms_figure(
    rows: list[str], norms: list[list[float]], tokens: list, *, start: int = 0,
    selected: tuple[int, int] | None = None,
) -> go.Figure:  # fmt: skip
    """[row][pos] heatmap of ‖resid_B − resid_A‖ per residual stream read (input to output)
    and position; `selected` is (row, pos)."""
    texts = _texts(tokens)
    xs = list(range(start, start + len(texts)))
    ys = list(range(len(rows)))
    fig = go.Figure(
        go.Heatmap(z=norms, x=xs, y=ys, colorscale=SEQUENTIAL, zmin=0, hoverinfo="skip",
                   colorbar=dict(title="‖B − A‖", thickness=14))
    )  # fmt: skip
    hover = [[f"{rows[r]} · pos {x} ({_tok(texts[x - start])}): ‖B − A‖ = {norms[r][x - start]:.3f}"
              for x in xs] for r in ys]  # fmt: skip
    add_click_grid(fig, xs, ys, hover)
    if selected is not None and start <= selected[1] < start + len(texts):
        cell(fig, selected[1], selected[0], color="#111")
    fig.update_xaxes(**token_ticks(texts, start=start), tickangle=-60)
    fig.update_yaxes(tickmode="array", tickvals=ys, ticktext=rows, title="")
    fig.update_layout(
        title=dict(text="Norm of the residual difference, resid_B − resid_A",
                   subtitle=dict(text="per residual stream read and position · click a cell")),
        height=170 + 40 * len(rows),
    )  # fmt: skip
    return apply(fig)


def diff_lens_figure(
    rows: list[str], top: list[list[DiffToken]], *, pos: int, token: str
) -> go.Figure:
    """The difference lens at one position: for each residual stream read, the top tokens of
    unembed(resid_B − resid_A) (no ln_final), as a [row][rank] grid coloured by the logit."""
    k = max((len(r) for r in top), default=0)
    z = [[r[i].value if i < len(r) else None for i in range(k)] for r in top]
    text = [[_tok(r[i].text) if i < len(r) else "" for i in range(k)] for r in top]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=list(range(1, k + 1)), y=list(range(len(rows))), text=text,
            texttemplate="%{text}", colorscale=SEQUENTIAL, colorbar=dict(title="logit", thickness=14),
            hovertemplate="%{text}: %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(rows))), ticktext=rows,
                     autorange="reversed")  # fmt: skip
    fig.update_xaxes(title="rank", dtick=1)
    fig.update_layout(
        title=dict(text=f"Difference lens at pos {pos} ({_tok(token)})",
                   subtitle=dict(text="top tokens of W_U · (resid_B − resid_A), no final layer norm")),
        height=160 + 30 * len(rows),
    )  # fmt: skip
    return apply(fig)


def layer_tokens_figure(
    rows: list[str], top: list[list[DiffToken]], *, title: str, subtitle: str
) -> go.Figure:
    """A [row][rank] token grid (the activation-difference lens of a text set); `subtitle`
    (which names the texts: a user's file) is shown as typed."""
    fig = diff_lens_figure(rows, top, pos=0, token="")
    fig.update_layout(title=dict(text=title, subtitle=dict(text=plot_text(subtitle))))
    return fig


# --- components (DLA) -----------------------------------------------------------------------
def heads_change_figure(
    a: list[list[float]], b: list[list[float]], *, target: str, selected: tuple[int, int] | None
) -> go.Figure:
    """[layer][head] heatmap of each head's direct effect on the target logit, B − A."""
    z = [[vb - va for va, vb in zip(ra, rb, strict=True)] for ra, rb in zip(a, b, strict=True)]
    n_layers, n_heads = len(z), len(z[0]) if z else 0
    bound = max((abs(v) for row in z for v in row), default=1.0) or 1.0
    fig = go.Figure(
        go.Heatmap(z=z, x=list(range(n_heads)), y=list(range(n_layers)), colorscale=DIVERGING,
                   zmid=0, zmin=-bound, zmax=bound, text=[[f"{v:+.2f}" for v in r] for r in z],
                   texttemplate="%{text}", hoverinfo="skip",
                   colorbar=dict(title="Δ logit", thickness=14))
    )  # fmt: skip
    hover = [[f"L{la}H{h}: A {a[la][h]:+.3f} · B {b[la][h]:+.3f} · B − A {z[la][h]:+.3f}"
              for h in range(n_heads)] for la in range(n_layers)]  # fmt: skip
    add_click_grid(fig, list(range(n_heads)), list(range(n_layers)), hover)
    if selected:
        cell(fig, selected[1], selected[0], color="#111")
    fig.update_xaxes(title="head", dtick=1, showgrid=False, zeroline=False)
    fig.update_yaxes(title="layer", dtick=1, showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(text=f"Change of each head's direct effect on logit({_tok(target)})",
                   subtitle=dict(text="B − A; hover a head for both sides")),
        height=190 + 44 * n_layers,
    )  # fmt: skip
    return apply(fig)


def component_terms(result: DiffComponentsResult) -> list[tuple[str, float, float]]:
    """(name, on A, on B) of each bar of the DLA view (``dla_figures.bar_terms``: embeddings,
    each MLP, all heads, the biases) of a ``diff_components`` answer, and the total."""
    a, b = result.a, result.b
    out = [(n, va, vb) for (n, va), (_, vb) in zip(bar_terms(a), bar_terms(b), strict=True)]
    return [*out, ("total", a.total, b.total)]


def terms_change_figure(terms: list[tuple[str, float, float]], *, target: str) -> go.Figure:
    """Grouped bars: each term's (embeddings, each layer's attention and MLP, total) direct
    effect on A and on B."""
    names = [n for n, _, _ in terms]
    fig = go.Figure()
    fig.add_bar(x=names, y=[a for _, a, _ in terms], name="A", marker_color=A_COLOR)
    fig.add_bar(x=names, y=[b for _, _, b in terms], name="B", marker_color=B_COLOR)
    fig.update_yaxes(title="direct effect (logit)")
    fig.update_layout(
        title=dict(text=f"Direct effect on logit({_tok(target)}), A and B",
                   subtitle=dict(text="the DLA view's bars on each side: embeddings, each MLP, all heads, biases, total")),
        barmode="group", height=380, legend=dict(orientation="h", y=1.02, x=1, xanchor="right"),
    )  # fmt: skip
    return apply(fig)


# --- attention ------------------------------------------------------------------------------
def pattern_diff_figure(
    tokens: list[str], a: list[list[float]], b: list[list[float]], *, start: int = 0,
    head: str, selected_pos: int | None = None,
) -> go.Figure:  # fmt: skip
    """[query][key] of pattern_B − pattern_A of one head over the window (future keys blank)."""
    n = len(tokens)
    z = [[(b[q][k] - a[q][k]) if k <= q else None for k in range(n)] for q in range(n)]
    xs = list(range(start, start + n))
    fig = go.Figure(
        go.Heatmap(z=z, x=xs, y=xs, colorscale=DIVERGING, zmid=0, zmin=-1, zmax=1, hoverinfo="skip",
                   colorbar=dict(title="B − A", thickness=14))
    )  # fmt: skip
    hover = [[f"query {xs[q]} → key {xs[k]}: A {a[q][k]:.3f} · B {b[q][k]:.3f}"
              if k <= q else "" for k in range(n)] for q in range(n)]  # fmt: skip
    add_click_grid(fig, xs, xs, hover)
    ticks = token_ticks(tokens, start=start)
    fig.update_xaxes(**ticks, tickangle=-60, title="key")
    fig.update_yaxes(**ticks, title="query")
    if selected_pos is not None and start <= selected_pos < start + n:
        fig.add_hline(y=selected_pos, line=dict(color="#111", width=1, dash="dot"))
    fig.update_layout(
        title=dict(text=f"Attention pattern of {head}, B − A",
                   subtitle=dict(text="blue: B attends more · red: A attends more")),
        height=max(420, 120 + 22 * n),
    )  # fmt: skip
    return apply(fig)


# --- latents --------------------------------------------------------------------------------
def strongest_rows(result: DiffLatentsResult) -> list[dict]:
    """A ``diff_latents`` answer's strongest changes over the prompt as figure rows
    {index, label, a, b, delta, pos}, largest |B − A| first."""
    return [{"index": x.index, "label": x.label, "a": x.a, "b": x.b, "delta": x.delta,
             "pos": x.pos} for x in result.strongest]  # fmt: skip


def latent_rows_at(result: DiffLatentsResult, pos: int) -> list[dict]:
    """The largest changes at one position of a ``diff_latents`` answer, as figure rows."""
    top = result.top
    return [x.model_dump() for x in top[pos]] if 0 <= pos < len(top) else []


def set_rows(result: LatentDiffSetResult) -> list[dict]:
    """A ``latent_diff_set`` answer's increased then decreased latents as figure rows (mean
    activations), each with its first example's text around the change (and, with a control
    set, its change there and the net change it is ranked by)."""
    out = []
    for x in [*result.increased, *result.decreased]:
        ex = x.examples[0] if x.examples else None
        out.append({"index": x.index, "label": x.label, "a": x.mean_a, "b": x.mean_b,
                    "delta": x.delta, "example": "".join(ex.tokens) if ex else None,
                    "control_delta": x.control_delta, "net_delta": x.net_delta})  # fmt: skip
    return out


def adiff_rows(result: AdiffLensResult) -> tuple[list[str], list[list[DiffToken]]]:
    """An ``adiff_lens`` answer's mean reading as (row labels, [row][rank] token and logit)."""
    layers = result.mean.layers
    rows = [f"{x.hook} (‖Δ‖ {x.norm:.2f})" for x in layers]
    top = [[DiffToken(id=t.id, text=t.text, value=v) for t, v in zip(x.top_tokens, x.top_values,
                                                                     strict=True)] for x in layers]  # fmt: skip
    return rows, top


def latent_changes_figure(latents: list[dict], *, title: str, subtitle: str) -> go.Figure:
    """Horizontal bars: each latent's activation on A and on B (its label on the axis), the
    largest change on top. A latent: {index, label, a, b} (a/b: activation or mean)."""
    names = [f"#{lt['index']} {plot_text(lt.get('label') or '')}"[:48]
             + (f" @{lt['pos']}" if lt.get("pos") is not None else "") for lt in latents][::-1]  # fmt: skip
    fig = go.Figure()
    fig.add_bar(y=names, x=[lt["a"] for lt in latents][::-1], orientation="h", name="A",
                marker_color=A_COLOR)  # fmt: skip
    fig.add_bar(y=names, x=[lt["b"] for lt in latents][::-1], orientation="h", name="B",
                marker_color=B_COLOR)  # fmt: skip
    fig.update_xaxes(title="activation")
    fig.update_layout(
        title=dict(text=title, subtitle=dict(text=plot_text(subtitle))), barmode="group",
        height=140 + 40 * max(len(latents), 1),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right"),
    )  # fmt: skip
    return apply(fig)


# --- side-by-side generation ----------------------------------------------------------------
def generation_kl_figure(kls: list[float], labels: tuple[str, str] = ("A", "B")) -> go.Figure:
    """KL(A || B) of the two models' next-token distributions at each step of A's text."""
    fig = go.Figure(go.Scatter(x=list(range(len(kls))), y=kls, mode="lines+markers",
                               line=dict(color=B_COLOR)))  # fmt: skip
    fig.update_layout(
        title=dict(text=f"Next-token KL divergence, {labels[0]} ‖ {labels[1]}, along {labels[0]}'s text",
                   subtitle=dict(text=f"step 0 is after the prompt; step t, after the prompt and "
                                 f"{labels[0]}'s first t tokens, read by both models")),
        xaxis_title="generated step", yaxis_title="KL (nats)", height=300,
    )  # fmt: skip
    return apply(fig)
