"""One figure theme for every view: light and paper-ready, with a large-font presenter variant."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
SEQUENTIAL = "Blues"
DIVERGING = "RdBu"
ACCENT = "#d62728"
COLORWAY = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"]


PAPER_WIDTH = 680  # px; at 3x this is 2040 px, ~300 dpi across a 6.8 in text width
PAPER_FONT = 12  # px; ~7 pt when the figure is set in a 3.3 in paper column


def template(presenter: bool = False, size: int | None = None) -> go.layout.Template:
    size = size or (22 if presenter else 13)
    return go.layout.Template(
        layout=go.Layout(
            font=dict(family=FONT, size=size, color="#111"),
            paper_bgcolor="white",
            plot_bgcolor="white",
            colorway=COLORWAY,
            margin=dict(l=60, r=20, t=50, b=60),
            xaxis=dict(showgrid=False, linecolor="#444", ticks="outside", automargin=True),
            yaxis=dict(gridcolor="#e5e5e5", linecolor="#444", ticks="outside", automargin=True),
            title=dict(font=dict(size=size + 3), x=0.0, xanchor="left"),
            hoverlabel=dict(font=dict(family=FONT)),
        )
    )


pio.templates["interpscope"] = template(False)
pio.templates["interpscope_presenter"] = template(True)
pio.templates["interpscope_paper"] = template(size=PAPER_FONT)


def apply(fig: go.Figure, presenter: bool = False) -> go.Figure:
    fig.update_layout(template="interpscope_presenter" if presenter else "interpscope")
    if fig.layout.title.subtitle.text and fig.layout.margin.t is None:
        fig.update_layout(margin_t=120 if presenter else 85)  # room for title and subtitle
    return fig


def presenter_copy(fig: go.Figure, factor: float = 1.5) -> go.Figure:
    """A copy of `fig` for a lecture hall: presenter template, explicit font sizes scaled up."""
    out = apply(go.Figure(fig), presenter=True)
    for trace in out.data:
        font = getattr(trace, "textfont", None)
        if font is not None and isinstance(font.size, int | float):
            font.size = round(font.size * factor)
    for name in out.layout:
        axis = out.layout[name]
        if name.startswith(("xaxis", "yaxis")) and axis.tickfont.size:
            axis.tickfont.size = round(axis.tickfont.size * factor)
    for note in out.layout.annotations:
        if note.font.size:
            note.font.size = round(note.font.size * factor)
    out.update_layout(height=round((fig.layout.height or 450) * 1.3))
    return out


def paper(fig: go.Figure) -> go.Figure:
    """A copy of `fig` for a report: the paper template (small font), a column's width."""
    out = go.Figure(fig)
    out.update_layout(template="interpscope_paper", width=PAPER_WIDTH)
    if out.layout.title.subtitle.text:
        out.update_layout(margin_t=80)
    return out


def show_token(text: str) -> str:
    """A token as a label: spaces shown as '·', newlines as '⏎', tabs as '⇥'."""
    return text.replace(" ", "·").replace("\n", "⏎").replace("\t", "⇥") or "∅"
