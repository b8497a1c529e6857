"""Figures of the Direct logit attribution view: heads as a heatmap, the rest as bars."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from components.heatmaps import DENSE, add_click_grid, cell, grid_cell, grid_dtick
from components.safe import plot_text
from components.theme import DIVERGING, apply, show_token
from engine.schemas.analyses import DLAResult

POS, NEG, GREY = "#2166ac", "#b2182b", "#555"  # the ends of RdBu, as in the heatmap


def metric_label(result: DLAResult) -> str:
    target = plot_text(show_token(result.target.text))
    if result.baseline is None:
        return f"logit({target})"
    return f"logit({target}) − logit({plot_text(show_token(result.baseline.text))})"


def subtitle(result: DLAResult) -> str:
    tok = plot_text(show_token(result.token.text))
    return (
        f"at pos {result.pos} ({tok}), through ln_final with its scale fixed · "
        f"model: {result.model_value:.3f}, sum of terms: {result.total:.3f}"
    )


def signed(v: float, bound: float) -> str:
    """`v` with enough decimals to tell apart values up to `bound` in size."""
    digits = 2 if bound >= 0.1 else min(6, 1 - math.floor(math.log10(bound or 1e-6)))
    return f"{v:+.{digits}f}"


def heads_figure(
    result: DLAResult, *, selected: tuple[int, int] | None = None, presenter: bool = False
) -> go.Figure:
    """Layer x head heatmap of each head's direct contribution, centred on 0."""
    z = result.heads
    n_layers, n_heads = len(z), len(z[0])
    bound = max((abs(v) for row in z for v in row), default=1.0) or 1.0
    fig = go.Figure()
    dense = n_heads > DENSE or n_layers > DENSE
    fig.add_heatmap(
        z=z, x=list(range(n_heads)), y=list(range(n_layers)), colorscale=DIVERGING, zmid=0,
        zmin=-bound, zmax=bound, text=[[signed(v, bound) for v in row] for row in z],
        texttemplate="" if dense else "%{text}", hoverinfo="skip", colorbar=dict(title="logit", thickness=14),
    )  # fmt: skip
    hover = [[f"L{la}H{h}: {z[la][h]:+.4f}" for h in range(n_heads)] for la in range(n_layers)]
    add_click_grid(fig, list(range(n_heads)), list(range(n_layers)), hover)
    if selected:
        cell(fig, selected[1], selected[0], color="#111")
    fig.update_xaxes(title="head", dtick=grid_dtick(n_heads), showgrid=False, zeroline=False)
    fig.update_yaxes(title="layer", dtick=grid_dtick(n_layers), showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(text=f"Direct effect of each head on {metric_label(result)}",
                   subtitle=dict(text=subtitle(result))),
        height=190 + grid_cell(n_layers) * n_layers,
    )  # fmt: skip
    return apply(fig, presenter)


def bar_terms(result: DLAResult) -> list[tuple[str, float]]:
    """Every non-head term, plus all heads together, in residual-stream order."""
    terms = [("embed", result.embed), ("pos embed", result.pos_embed)]
    terms += [(f"MLP {i}", v) for i, v in enumerate(result.mlps)]
    terms += [
        ("all heads", sum(map(sum, result.heads))),
        ("attn biases", sum(result.attn_bias)),
        ("unembed bias", result.unembed_bias),
    ]
    return terms


def terms_figure(
    result: DLAResult, *, selected_layer: int | None = None, presenter: bool = False
) -> go.Figure:
    """Bars: embeddings, each MLP, all heads, the biases, and their total (= the model's value)."""
    terms = bar_terms(result) + [("total", result.total)]
    names = [n for n, _ in terms]
    bound = max(abs(v) for _, v in terms) or 1.0
    colors = [GREY if n == "total" else POS if v >= 0 else NEG for n, v in terms]
    edges = [3 if n == f"MLP {selected_layer}" else 0 for n in names]
    fig = go.Figure()
    fig.add_bar(
        x=names, y=[v for _, v in terms], marker=dict(color=colors, line=dict(width=edges, color="#111")),
        text=[signed(v, bound) for _, v in terms], textposition="outside", cliponaxis=False,
        hovertemplate="%{x}: %{y:+.5f}<extra></extra>",
    )  # fmt: skip
    fig.add_hline(y=0, line_color="#444", line_width=1)
    fig.update_yaxes(title="logit", zeroline=False)
    fig.update_layout(
        title=dict(text=f"Direct effect on {metric_label(result)}: embeddings, MLPs, biases",
                   subtitle=dict(text=subtitle(result))),
        height=420, bargap=0.25,
    )  # fmt: skip
    return apply(fig, presenter)
