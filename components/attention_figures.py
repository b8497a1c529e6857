"""Figures of the Attention view: the layer x head score overview and head patterns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.heatmaps import (
    DENSE,
    SECOND,
    add_click_grid,
    cell,
    grid_cell,
    grid_dtick,
    outline,
    token_ticks,
)
from components.theme import SEQUENTIAL, apply
from engine.schemas.analyses import AttentionResult, HeadScore, HeadScoresResult
from engine.schemas.arrays import unpack

Head = tuple[int, int]
MAX_CLICKABLE = 128  # positions; past this a pattern is hover-only (n^2 click targets)


def head_key(layer: int, head: int) -> str:
    """A head as the URL carries it: ``"layer.head"``."""
    return f"{layer}.{head}"


def parse_head(key: str) -> Head:
    layer, head = key.split(".")
    return int(layer), int(head)


def head_label(key: str | None) -> str:
    return "none" if not key else "L{}H{}".format(*parse_head(key))


def score_of(result: HeadScoresResult, name: str) -> HeadScore:
    return next(s for s in result.scores if s.name == name)


def scores_table(result: HeadScoresResult, heads: list[Head]) -> pd.DataFrame:
    """Every score (rows) of each of `heads` (columns), None where a score is undefined."""
    cols = {
        f"L{la}H{h}": [None if s.values is None else s.values[la][h] for s in result.scores]
        for la, h in heads
    }
    return pd.DataFrame({"score": [s.label for s in result.scores], **cols})


def head_scores_figure(
    result: HeadScoresResult,
    name: str,
    *,
    selected: Head | None = None,
    compare: Head | None = None,
    presenter: bool = False,
) -> go.Figure:
    """Heatmap of one score: rows = layers (0 on top), columns = heads, value in each cell."""
    score = score_of(result, name)
    n_layers, n_heads = result.n_layers, result.n_heads
    fig = go.Figure()
    dense = n_heads > DENSE or n_layers > DENSE  # e.g. 32 x 32 heads: no numbers in cells
    height = 170 + grid_cell(n_layers) * n_layers
    title = f"{score.label} score of each head · {score.description}"
    if score.values is None:
        fig.add_annotation(text=score.reason, showarrow=False, x=0.5, y=0.5, xref="paper",
                           yref="paper", font=dict(size=15))  # fmt: skip
        fig.update_layout(title=title, height=height, xaxis_visible=False, yaxis_visible=False)
        return apply(fig, presenter)
    z = score.values
    bounded = name != "entropy"
    fig.add_heatmap(
        z=z, x=list(range(n_heads)), y=list(range(n_layers)), text=[[f"{v:.2f}" for v in r] for r in z],
        texttemplate="" if dense else "%{text}", colorscale=SEQUENTIAL, zmin=0, zmax=1 if bounded else None,
        colorbar=dict(title=dict(text="nats" if not bounded else "score"), thickness=14),
        hoverinfo="skip",
    )  # fmt: skip
    hover = [[f"L{la}H{h}: {z[la][h]:.3f}" for h in range(n_heads)] for la in range(n_layers)]
    add_click_grid(fig, list(range(n_heads)), list(range(n_layers)), hover)
    if selected:
        cell(fig, selected[1], selected[0])
    if compare and compare != selected:
        cell(fig, compare[1], compare[0], color=SECOND, dash="dash")
    fig.update_xaxes(title="head", dtick=grid_dtick(n_heads), showgrid=False, zeroline=False)
    fig.update_yaxes(title="layer", dtick=grid_dtick(n_layers), showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(text=title, subtitle=dict(text=f"mean over {score.n_queries} query positions")),
        height=height,
    )
    return apply(fig, presenter)


def pattern_block(answer: AttentionResult) -> tuple[str, np.ndarray, np.ndarray]:
    """(title, window block [query][key], before [query]) of an ``attention_pattern`` answer."""
    title = head_label(head_key(answer.layer, answer.head))
    return title, unpack(answer.pattern), unpack(answer.before)


def _with_before(block: np.ndarray, before: np.ndarray | None, start: int) -> np.ndarray:
    """The window block with the future masked (no cell) and, when the window does not start
    at 0, a first column holding each query's attention to the keys before it."""
    w = block.shape[0]
    masked = np.tril(np.asarray(block, dtype=float))
    masked[np.triu_indices(w, 1)] = np.nan
    if start == 0 or before is None:
        return masked
    return np.concatenate([np.asarray(before, dtype=float)[:, None], masked], axis=1)


def patterns_figure(
    tokens: list[str],
    heads: list[tuple[str, np.ndarray, np.ndarray | None]],
    *,
    start: int = 0,
    selected_pos: int | None = None,
    presenter: bool = False,
) -> go.Figure:
    """One heatmap per (title, pattern block, before) side by side, queries down, keys across.

    `tokens` are the window's (positions ``start`` on); each block is ``[query][key]`` over
    the window, and `before` (``[query]``, or None) each query's attention to the keys before
    the window, drawn as a first column ``◀``. Axes carry the prompt's positions."""
    w = len(tokens)
    pos = list(range(start, start + w))
    fig = make_subplots(
        rows=1, cols=len(heads), subplot_titles=[h[0] for h in heads], horizontal_spacing=0.12
    )
    ticks = token_ticks(tokens, start=start)
    key_ticks = token_ticks(tokens, numbered=False, start=start)
    for i, (title, block, before) in enumerate(heads, start=1):
        z = _with_before(block, before, start)
        xs = ([start - 1] if z.shape[1] > w else []) + pos
        clickable = w <= MAX_CLICKABLE
        fig.add_heatmap(
            z=z, x=xs, y=pos, coloraxis="coloraxis",
            hovertemplate=f"{title}<br>query %{{y}} → key %{{x}}: %{{z:.3f}}<extra></extra>",
            hoverinfo="skip" if clickable else None, row=1, col=i,
        )  # fmt: skip
        x_ticks = dict(key_ticks)
        if len(xs) > w:
            x_ticks["tickvals"] = [start - 1, *key_ticks["tickvals"]]
            x_ticks["ticktext"] = ["◀ before", *key_ticks["ticktext"]]
        fig.update_xaxes(title="key", tickangle=-90, row=1, col=i, **x_ticks)
        fig.update_yaxes(autorange="reversed", row=1, col=i, **ticks)
        if clickable:
            hover = [[_cell_hover(k, z[q - start][j], start) for j, k in enumerate(xs)]
                     for q in pos]  # fmt: skip
            add_click_grid(fig, xs, pos, hover, row=1, col=i,
                           template=f"{title}<br>query %{{y}} → %{{text}}")  # fmt: skip
        if selected_pos is not None and start <= selected_pos < start + w:
            outline(fig, (xs[0] - 0.5, xs[-1] + 0.5), (selected_pos - 0.5, selected_pos + 0.5),
                    row=1, col=i)  # fmt: skip
    fig.update_yaxes(title="query", row=1, col=1)
    fig.update_xaxes(tickfont=dict(size=11 if w <= 40 else 9))
    fig.update_yaxes(tickfont=dict(size=11 if w <= 40 else 9))
    side = min(900, 200 + 19 * w)
    fig.update_layout(
        height=side + 60,
        coloraxis=dict(
            colorscale=SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title="attn", thickness=14)
        ),
    )
    return apply(fig, presenter)


def _cell_hover(k: int, value: float, start: int) -> str:
    """A pattern cell's hover text after "query q → " (the template holds the head and query)."""
    if np.isnan(value):
        return f"key {k}: the future (masked)"
    what = f"all keys before {start}" if k < start else f"key {k}"
    return f"{what}: {value:.3f}"


def overview_figure(
    title: str,
    overview: np.ndarray,
    stride: int,
    n_tokens: int,
    window: tuple[int, int],
    *,
    presenter: bool = False,
) -> go.Figure:
    """The whole pattern, max-pooled (`stride` positions a cell), with the window outlined;
    clicking near the diagonal moves the window there. Sent to the browser as float32, which
    plotly sends as binary: the figure is redrawn on every click, so its bytes are paid on
    every click (the view asks the engine for ``windows.OVERVIEW`` cells a side)."""
    o = np.asarray(overview, dtype=np.float32)
    centre = (stride - 1) / 2
    fig = go.Figure()
    fig.add_heatmap(
        z=o, x0=centre, dx=stride, y0=centre, dy=stride, coloraxis="coloraxis",
        hovertemplate="queries ~%{y:.0f}, keys ~%{x:.0f}: max %{z:.3f}<extra></extra>",
    )  # fmt: skip
    cells = np.arange(o.shape[0]) * stride + centre
    fig.add_scatter(
        x=cells, y=cells, mode="markers", marker=dict(size=6, opacity=0), showlegend=False,
        hovertemplate="click: show positions around %{x:.0f}<extra></extra>",
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
    )  # fmt: skip
    start, stop = window
    outline(fig, (start - 0.5, stop - 0.5), (start - 0.5, stop - 0.5))
    last = n_tokens - 0.5
    fig.update_xaxes(title="key", range=[-0.5, last], showgrid=False, zeroline=False)
    fig.update_yaxes(title="query", range=[last, -0.5], showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(
            text=f"{title}: the whole prompt",
            subtitle=dict(text=f"max over {stride} x {stride} positions a cell; box = window"),
        ),
        height=360, width=None, hoverdistance=-1, hovermode="closest", clickmode="event+select",
        coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1, showscale=False),
    )  # fmt: skip
    return apply(fig, presenter)
