"""Figure export: PNG at 3x and SVG, with a caption stamp (model, prompt, view parameters)."""

from __future__ import annotations

import copy
import os
import shutil
import textwrap

import plotly.graph_objects as go


def caption_text(model: str, prompt: str, params: dict) -> str:
    shown = prompt if len(prompt) <= 120 else prompt[:117] + "..."
    extra = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"Model: {model} · Prompt: {shown!r}" + (f" · {extra}" if extra else "")


def with_caption(fig: go.Figure, caption: str) -> go.Figure:
    """A copy of `fig` with the caption under the plot, wrapped to the figure width."""
    out = go.Figure(copy.deepcopy(fig.to_dict()))
    width = out.layout.width or 1000
    lines = textwrap.wrap(caption, width=max(40, int(width / 7)))
    bottom = (out.layout.margin.b or 60) + 18 * len(lines) + 20
    out.add_annotation(
        text="<br>".join(lines), xref="paper", yref="paper", x=0, y=0, xanchor="left",
        yanchor="top", yshift=-(bottom - 18 * len(lines) - 10), showarrow=False,
        align="left", font=dict(size=11, color="#444"),
    )  # fmt: skip
    out.update_layout(margin=dict(b=bottom), height=(out.layout.height or 500) + 18 * len(lines))
    return out


def _ensure_browser() -> None:
    if "BROWSER_PATH" not in os.environ:
        for name in ("chromium", "chromium-browser", "google-chrome"):
            path = shutil.which(name)
            if path:
                os.environ["BROWSER_PATH"] = path
                return


def figure_bytes(fig: go.Figure, fmt: str, *, width: int = 1000) -> bytes:
    """Render with kaleido (uses the local Chromium); PNG at scale 3, SVG as vectors."""
    _ensure_browser()
    scale = 3 if fmt == "png" else 1
    return fig.to_image(format=fmt, width=fig.layout.width or width, scale=scale)
