"""Figures of the Steering view."""

from __future__ import annotations

import plotly.graph_objects as go

from components.theme import apply


def kl_figure(kls: list[float]) -> go.Figure:
    """KL(steered || baseline) of the next-token distributions at each generated step."""
    fig = go.Figure(go.Scatter(x=list(range(len(kls))), y=kls, mode="lines+markers"))
    fig.update_layout(
        title=dict(text="Next-token KL divergence, steered ‖ baseline",
                   subtitle=dict(text="step 0 is the prompt's own next token; later steps "
                                 "compare the two continuations' next tokens")),
        xaxis_title="generated step", yaxis_title="KL (nats)", height=300,
    )  # fmt: skip
    return apply(fig)


def continuation_html(prompt: str, text: str, css: str) -> str:
    """A continuation after its prompt (greyed), both escaped: the HTML the Steering and
    Directions pages show in their side-by-side boxes (`css`: the box's class)."""
    from components.safe import h

    return (
        f"<div class='{css}' style='white-space: pre-wrap; font-size: 1.1em; line-height: 1.6'>"
        f"<span style='color:#888'>{h(prompt)}</span>{h(text)}</div>"
    )
