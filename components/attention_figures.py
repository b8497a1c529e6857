"""Figures of the Attention view: the layer x head score overview and head patterns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.heatmaps import SECOND, add_click_grid, cell, outline, token_ticks
from components.theme import SEQUENTIAL, apply

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


def score_of(result: dict, name: str) -> dict:
    return next(s for s in result["scores"] if s["name"] == name)


def scores_table(result: dict, heads: list[Head]) -> pd.DataFrame:
    """Every score (rows) of each of `heads` (columns), None where a score is undefined."""
    cols = {
        f"L{la}H{h}": [
            None if s["values"] is None else s["values"][la][h] for s in result["scores"]
        ]
        for la, h in heads
    }
    return pd.DataFrame({"score": [s["label"] for s in result["scores"]], **cols})


def head_scores_figure(
    result: dict,
    name: str,
    *,
    selected: Head | None = None,
    compare: Head | None = None,
    presenter: bool = False,
) -> go.Figure:
    """Heatmap of one score: rows = layers (0 on top), columns = heads, value in each cell."""
    score = score_of(result, name)
    n_layers, n_heads = result["n_layers"], result["n_heads"]
    fig = go.Figure()
    height = 170 + 44 * n_layers
    title = f"{score['label']} score of each head · {score['description']}"
    if score["values"] is None:
        fig.add_annotation(text=score["reason"], showarrow=False, x=0.5, y=0.5, xref="paper",
                           yref="paper", font=dict(size=15))  # fmt: skip
        fig.update_layout(title=title, height=height, xaxis_visible=False, yaxis_visible=False)
        return apply(fig, presenter)
    z = score["values"]
    bounded = name != "entropy"
    fig.add_heatmap(
        z=z, x=list(range(n_heads)), y=list(range(n_layers)), text=[[f"{v:.2f}" for v in r] for r in z],
        texttemplate="%{text}", colorscale=SEQUENTIAL, zmin=0, zmax=1 if bounded else None,
        colorbar=dict(title=dict(text="nats" if not bounded else "score"), thickness=14),
        hoverinfo="skip",
    )  # fmt: skip
    hover = [[f"L{la}H{h}: {z[la][h]:.3f}" for h in range(n_heads)] for la in range(n_layers)]
    add_click_grid(fig, list(range(n_heads)), list(range(n_layers)), hover)
    if selected:
        cell(fig, selected[1], selected[0])
    if compare and compare != selected:
        cell(fig, compare[1], compare[0], color=SECOND, dash="dash")
    fig.update_xaxes(title="head", dtick=1, showgrid=False, zeroline=False)
    fig.update_yaxes(title="layer", dtick=1, showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(
            text=title, subtitle=dict(text=f"mean over {score['n_queries']} query positions")
        ),
        height=height,
    )
    return apply(fig, presenter)


def patterns_figure(
    tokens: list[str],
    heads: list[tuple[str, list[list[float]]]],
    *,
    selected_pos: int | None = None,
    presenter: bool = False,
) -> go.Figure:
    """One heatmap per (title, pattern [query][key]), side by side, queries down, keys across."""
    n = len(tokens)
    fig = make_subplots(
        rows=1, cols=len(heads), subplot_titles=[t for t, _ in heads], horizontal_spacing=0.12
    )
    ticks, key_ticks = token_ticks(tokens), token_ticks(tokens, numbered=False)
    for i, (title, pattern) in enumerate(heads, start=1):
        masked = np.tril(np.asarray(pattern, dtype=float))
        masked[np.triu_indices(n, 1)] = np.nan  # the future: no cell
        clickable = n <= MAX_CLICKABLE
        fig.add_heatmap(
            z=masked, x=list(range(n)), y=list(range(n)), coloraxis="coloraxis",
            hovertemplate=f"{title}<br>query %{{y}} → key %{{x}}: %{{z:.3f}}<extra></extra>",
            hoverinfo="skip" if clickable else None, row=1, col=i,
        )  # fmt: skip
        fig.update_xaxes(title="key", tickangle=-90, row=1, col=i, **key_ticks)
        fig.update_yaxes(autorange="reversed", row=1, col=i, **ticks)
        if clickable:
            hover = [
                [f"{title}<br>query {q} → key {k}: {pattern[q][k]:.3f}" for k in range(n)]
                for q in range(n)
            ]
            add_click_grid(fig, list(range(n)), list(range(n)), hover, row=1, col=i)
        if selected_pos is not None:
            outline(fig, (-0.5, n - 0.5), (selected_pos - 0.5, selected_pos + 0.5), row=1, col=i)
    fig.update_yaxes(title="query", row=1, col=1)
    fig.update_xaxes(tickfont=dict(size=11 if n <= 40 else 9))
    fig.update_yaxes(tickfont=dict(size=11 if n <= 40 else 9))
    side = min(900, 200 + 19 * n)
    fig.update_layout(
        height=side + 60,
        coloraxis=dict(
            colorscale=SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title="attn", thickness=14)
        ),
    )
    return apply(fig, presenter)
