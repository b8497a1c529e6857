"""Figures of the Logit lens view: the row x position top-token map and target trajectories."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.heatmaps import add_click_grid, cell, outline, token_ticks
from components.safe import plot_text
from components.theme import COLORWAY, SEQUENTIAL, apply, show_token
from engine.schemas.analyses import LensRows, LensTargetsResult, LogitLensResult

CELL_CHARS = 8


def short(text: str, n: int = CELL_CHARS) -> str:
    t = show_token(text)
    return plot_text(t if len(t) <= n else t[: n - 1] + "…")


def row_of_layer(result: LensRows, layer: int | None) -> int | None:
    """The first lens row of block `layer`."""
    return next((i for i, la in enumerate(result.row_layers) if la == layer), None)


def final_top(result: LogitLensResult, pos: int) -> dict[int, str]:
    """{id: text} of the last row's top tokens at `pos`; empty when `pos` is not in the window."""
    i = pos - result.start
    if not 0 <= i < len(result.tokens):
        return {}
    return {c.id: c.text for c in result.top[-1][i]}


def _hover(result: LogitLensResult, r: int, p: int) -> str:
    tok = result.tokens[p]
    lines = [f"{result.rows[r]} · pos {tok.pos} ({plot_text(show_token(tok.text))}) → next:"]
    lines += [
        f"{k + 1}. {plot_text(show_token(c.text))}  p={c.prob:.3f}"
        for k, c in enumerate(result.top[r][p])
    ]
    return "<br>".join(lines)


def lens_figure(
    result: LogitLensResult,
    *,
    selected_pos: int | None = None,
    selected_layer: int | None = None,
    presenter: bool = False,
) -> go.Figure:
    """Cell (row, pos) = top next-token prediction read from that residual stream; colour = p.
    Columns are the result's position window (its ``tokens``), labelled with their positions."""
    top, rows = result.top, result.rows
    n_rows, n_pos = len(rows), len(result.tokens)
    xs = [t.pos for t in result.tokens]
    z = [[top[r][p][0].prob for p in range(n_pos)] for r in range(n_rows)]
    text = [[short(top[r][p][0].text) for p in range(n_pos)] for r in range(n_rows)]
    fig = go.Figure()
    fig.add_heatmap(
        z=np.asarray(z), x=xs, y=list(range(n_rows)), text=np.asarray(text),
        texttemplate="%{text}",
        textfont=dict(size=11), colorscale=SEQUENTIAL, zmin=0, zmax=1, hoverinfo="skip",
        colorbar=dict(title=dict(text="p(top)"), thickness=14),
    )  # fmt: skip
    hover = [[_hover(result, r, p) for p in range(n_pos)] for r in range(n_rows)]
    add_click_grid(fig, xs, list(range(n_rows)), hover)
    if selected_pos is not None and selected_pos in xs:
        outline(fig, (selected_pos - 0.5, selected_pos + 0.5), (-0.5, n_rows - 0.5))
        row = row_of_layer(result, selected_layer)
        if row is not None:
            cell(fig, selected_pos, row, color="#111")
    fig.update_xaxes(title="position (input token)", tickangle=-50, showgrid=False,
                     **token_ticks([t.text for t in result.tokens], start=xs[0]))  # fmt: skip
    fig.update_yaxes(tickmode="array", tickvals=list(range(n_rows)), ticktext=rows, showgrid=False)
    stage = result.stage.value
    fig.update_layout(
        title=dict(
            text=f"Logit lens ({stage}): top next-token prediction from each residual stream",
            subtitle=dict(
                text="read through ln_final and the unembedding; colour = its probability"
            ),
        ),
        height=220 + max(26, min(44, 900 // n_rows)) * n_rows,
    )
    return apply(fig, presenter)


def traces_figure(result: LensTargetsResult, *, presenter: bool = False) -> go.Figure:
    """Left: each target's lens probability down the rows; right: its rank (log scale)."""
    rows = result.rows
    xs = list(range(len(rows)))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Probability", "Rank (1 = top)"),
                        horizontal_spacing=0.1)  # fmt: skip
    for i, tr in enumerate(result.traces):
        name = f"{plot_text(show_token(tr.token.text))} (id {tr.token.id})"
        color = COLORWAY[i % len(COLORWAY)]
        common = dict(
            x=xs, name=name, legendgroup=name, mode="lines+markers", line=dict(color=color)
        )
        fig.add_scatter(y=tr.prob, row=1, col=1, **common,
                        hovertemplate="%{y:.4f}<extra>" + name + "</extra>")  # fmt: skip
        fig.add_scatter(y=tr.rank, row=1, col=2, showlegend=False, **common,
                        hovertemplate="rank %{y}<extra>" + name + "</extra>")  # fmt: skip
    fig.update_xaxes(tickmode="array", tickvals=xs, ticktext=rows, tickangle=-40)
    fig.update_yaxes(range=[0, 1.02], title="p", row=1, col=1)
    worst = max((r for tr in result.traces for r in tr.rank), default=1)
    top = math.log10(max(10, worst)) + 0.1
    fig.update_yaxes(type="log", range=[top, -0.1], dtick=1, title="rank", row=1, col=2)
    fig.update_layout(
        title=f"Lens trajectory at pos {result.pos} ({result.stage.value})",
        height=420,
        legend=dict(orientation="h", y=-0.3),
    )
    return apply(fig, presenter)
