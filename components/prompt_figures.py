"""Figures and tables for the Prompt view: per-token loss and top-k next-token predictions."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.lens_figures import short
from components.safe import h, plot_text
from components.theme import ACCENT, SEQUENTIAL, apply, show_token
from engine.schemas.analyses import PredictionsResult
from engine.schemas.common import TokenInfo


def token_labels(tokens: list[TokenInfo]) -> list[str]:
    return [plot_text(show_token(t.text)) for t in tokens]


def predictions_figure(
    result: PredictionsResult,
    *,
    selected_pos: int | None = None,
    window: tuple[int, int] | None = None,
    presenter: bool = False,
) -> go.Figure:
    """Top: loss of each token given the ones before it. Bottom: the top-k predictions after
    each position (text = predicted token, colour = its probability). Only the positions of
    `window` ``[start, stop)`` when given."""
    start, stop = window or (result.start, result.stop)
    first = result.start  # the answer's top-k starts there
    tokens, top = result.tokens[start:stop], result.top[start - first : stop - first]
    loss = result.loss[start:stop]
    k = len(top[0])
    xs = list(range(start, stop))
    idx = range(len(xs))
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.35, 0.65], vertical_spacing=0.14,
        subplot_titles=("Loss of each token (nats)", f"Top-{k} next-token predictions after each token"),
    )  # fmt: skip
    fig.add_bar(
        x=xs,
        y=[v if v is not None else 0 for v in loss],
        marker_color=[ACCENT if i == selected_pos else "#1f77b4" for i in xs],
        customdata=[[plot_text(show_token(t.text)), t.id] for t in tokens],
        hovertemplate="pos %{x}: %{customdata[0]} (id %{customdata[1]})<br>loss %{y:.3f}<extra></extra>",
        row=1, col=1, showlegend=False,
    )  # fmt: skip
    probs = [[top[p][j].prob for p in idx] for j in range(k)]
    text = [[short(top[p][j].text) for p in idx] for j in range(k)]
    fig.add_heatmap(
        x=xs, y=[f"#{j + 1}" for j in range(k)], z=probs, text=text, texttemplate="%{text}",
        textfont=dict(size=11),
        colorscale=SEQUENTIAL, zmin=0, zmax=1, colorbar=dict(title="p", len=0.6, y=0.3),
        hovertemplate="after pos %{x}: %{text}<br>p = %{z:.3f}<extra></extra>",
        row=2, col=1,
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", row=2, col=1)
    fig.update_xaxes(
        tickmode="array", tickvals=xs, ticktext=token_labels(tokens), tickangle=-45, row=2, col=1
    )
    if selected_pos is not None:
        for row in (1, 2):
            fig.add_vrect(x0=selected_pos - 0.5, x1=selected_pos + 0.5, line_width=2,
                          line_color=ACCENT, fillcolor="rgba(0,0,0,0)", row=row, col=1)  # fmt: skip
    fig.update_layout(height=260 + 34 * k, bargap=0.15)
    return apply(fig, presenter)


def predictions_table(result: PredictionsResult, pos: int) -> pd.DataFrame:
    """The top-k after `pos` (which the answer's window must hold)."""
    rows = result.top[pos - result.start]
    return pd.DataFrame(
        {
            "rank": range(1, len(rows) + 1),
            "token": [show_token(r.text) for r in rows],
            "id": [r.id for r in rows],
            "probability": [r.prob for r in rows],
            "logit": [r.logit for r in rows],
        }
    )


def tokens_html(
    tokens: list[TokenInfo], loss: list[float | None] | None = None, selected: int | None = None
) -> str:
    """Token chips with visible boundaries and ids; shaded by loss when given."""
    top = max((v for v in (loss or []) if v is not None), default=1.0) or 1.0
    chips = []
    for t in tokens:
        pos = t.pos
        shade = ""
        if loss and loss[pos] is not None:
            shade = f"background: rgba(214,39,40,{0.08 + 0.5 * loss[pos] / top:.2f});"
        border = "2px solid #d62728" if pos == selected else "1px solid #888"
        tip = f"pos {pos} · id {t.id}" + (
            f" · loss {loss[pos]:.3f}" if loss and loss[pos] is not None else ""
        )
        chips.append(
            f'<span class="tok" title="{h(tip)}" style="border:{border};{shade}">'
            f"<span class='t'>{h(show_token(t.text))}</span>"
            f"<span class='i'>{t.id}</span></span>"
        )
    style = (
        "<style>.toks{line-height:2.6;font-family:DejaVu Sans Mono,monospace}"
        ".tok{display:inline-flex;flex-direction:column;align-items:center;margin:2px 1px;"
        "padding:1px 4px;border-radius:4px}.tok .t{font-size:1.0em;white-space:pre}"
        ".tok .i{font-size:0.65em;color:#555;line-height:1.1}</style>"
    )
    return style + "<div class='toks'>" + "".join(chips) + "</div>"
