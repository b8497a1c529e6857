"""Shared pieces of the heatmap views: clickable cells, outlines, token axes.

Plotly heatmaps report no selection when clicked, so a clickable heatmap gets an invisible
marker at every cell centre; with ``hoverdistance=-1`` a click anywhere selects the nearest
centre, i.e. the cell under the pointer. The markers carry the hover text. Only one of them
is drawn (``marker.maxdisplayed``): hover and selection work on the data, so the browser
keeps one SVG path instead of one per cell (1,640 for the attention pattern's window).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from components.safe import plot_text
from components.theme import ACCENT, show_token

SECOND = "#ff7f0e"  # the comparison selection
DENSE = 16  # past this many heads or layers a grid's cells hold no numbers (hover has them)


def grid_cell(n_rows: int) -> int:
    """Pixels a row of a layer x head grid: 44 on small models, down to 18 on deep ones."""
    return max(18, min(44, 700 // max(n_rows, 1)))


def grid_dtick(n: int) -> int:
    """A label every 1 (up to 32 heads or layers), else every 4."""
    return 1 if n <= 32 else 4


def token_ticks(tokens: list[str], *, numbered: bool = True, start: int = 0) -> dict:
    """Axis settings that label positions start..start+n-1 with their tokens (duplicates stay
    apart)."""
    pos = range(start, start + len(tokens))
    text = [
        f"{i}:{plot_text(show_token(t))}" if numbered else plot_text(show_token(t))
        for i, t in zip(pos, tokens, strict=True)
    ]
    return dict(tickmode="array", tickvals=list(pos), ticktext=text)


def add_click_grid(
    fig: go.Figure,
    xs: list[int],
    ys: list[int],
    hover: list[list[str]],
    *,
    row: int | None = None,
    col: int | None = None,
    template: str = "%{text}",
) -> None:
    """Invisible markers at every (x, y) cell; `hover[y][x]` is each cell's hover text, shown
    through `template` (``%{text}`` is it; the rest is sent once, not once per cell).
    Pins the axes to the cells, first row on top."""
    px = np.tile(np.asarray(xs), len(ys))  # numpy: plotly validates lists element by element
    py = np.repeat(np.asarray(ys), len(xs))
    text = np.asarray([hover[j][i] for j in range(len(ys)) for i in range(len(xs))])
    invisible = dict(marker=dict(opacity=0))
    fig.add_scatter(
        x=px, y=py, mode="markers", text=text, hovertemplate=f"{template}<extra></extra>",
        marker=dict(size=8, opacity=0, maxdisplayed=1), selected=invisible, unselected=invisible,
        showlegend=False, row=row, col=col,
    )  # fmt: skip
    fig.update_layout(hoverdistance=-1, hovermode="closest", clickmode="event+select")
    # Pin the axes to the cells (markers would pad them); the y axis runs top to bottom.
    fig.update_xaxes(range=[min(xs) - 0.5, max(xs) + 0.5], autorange=False, row=row, col=col)
    fig.update_yaxes(range=[max(ys) + 0.5, min(ys) - 0.5], autorange=False, row=row, col=col)


def outline(
    fig: go.Figure,
    x: tuple[float, float],
    y: tuple[float, float],
    *,
    color: str = ACCENT,
    dash: str = "solid",
    row: int | None = None,
    col: int | None = None,
) -> None:
    kw = {} if row is None else {"row": row, "col": col}
    fig.add_shape(
        type="rect", x0=x[0], x1=x[1], y0=y[0], y1=y[1], line=dict(color=color, width=2.5, dash=dash),
        fillcolor="rgba(0,0,0,0)", layer="above", **kw,
    )  # fmt: skip


def cell(fig: go.Figure, x: int, y: int, **kw) -> None:
    """Outline one cell of a heatmap on integer axes."""
    outline(fig, (x - 0.5, x + 0.5), (y - 0.5, y + 0.5), **kw)
