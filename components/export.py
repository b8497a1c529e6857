"""Figure export: PNG at 3x and SVG in the paper style, with a caption stamp.

Rendering uses kaleido 1.x driving the local Chromium. Starting Chromium costs seconds, so
one browser is kept alive (``Renderer``) in its own thread and event loop and serves every
export of the process; it restarts itself after a failure. MathJax is off: kaleido would
otherwise load it from a CDN, and exports must never touch the network.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import logging
import os
import shutil
import textwrap
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

import plotly.graph_objects as go

from components.safe import plot_text
from components.theme import paper

log = logging.getLogger(__name__)
RENDER_TIMEOUT_S = 60.0


def caption_text(model: str, prompt: str, params: dict) -> str:
    shown = prompt if len(prompt) <= 120 else prompt[:117] + "..."
    extra = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"Model: {model} · Prompt: {shown!r}" + (f" · {extra}" if extra else "")


def with_caption(fig: go.Figure, caption: str) -> go.Figure:
    """A copy of `fig` with the caption under the plot, wrapped to the figure width."""
    out = go.Figure(copy.deepcopy(fig.to_dict()))
    width = out.layout.width or 1000
    lines = textwrap.wrap(caption, width=max(40, int(width / 6.5)))
    bottom = (out.layout.margin.b or 60) + 16 * len(lines) + 24
    out.add_annotation(
        text="<br>".join(plot_text(line) for line in lines), xref="paper", yref="paper", x=0, y=0, xanchor="left",
        yanchor="top", yshift=-(bottom - 16 * len(lines) - 12), showarrow=False,
        align="left", font=dict(size=10, color="#333"),
    )  # fmt: skip
    out.update_layout(margin=dict(b=bottom), height=(out.layout.height or 500) + 16 * len(lines))
    return out


def export_figure(fig: go.Figure, caption: str) -> go.Figure:
    """What a download holds: `fig` in the paper style with the caption stamped under it."""
    return with_caption(paper(fig), caption)


def _ensure_browser() -> None:
    if "BROWSER_PATH" not in os.environ:
        for name in ("chromium", "chromium-browser", "google-chrome"):
            path = shutil.which(name)
            if path:
                os.environ["BROWSER_PATH"] = path
                return


class Renderer:
    """One kaleido browser kept alive for the whole process; thread-safe, restarts on error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kaleido = None

    def _start(self) -> None:
        import kaleido

        _ensure_browser()
        t0 = time.perf_counter()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="kaleido", daemon=True).start()
        self._kaleido = kaleido.Kaleido(mathjax=False, timeout=RENDER_TIMEOUT_S)
        self._run(self._kaleido.open())
        log.info("kaleido browser started in %.2f s", time.perf_counter() - t0)

    def _run(self, coro):
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=RENDER_TIMEOUT_S + 30)
        except FutureTimeout:
            future.cancel()
            raise

    def render(self, fig_dict: dict, opts: dict) -> bytes:
        with self._lock:
            if self._kaleido is None:
                self._start()
            try:
                return self._run(self._kaleido.calc_fig(fig_dict, opts=opts))
            except Exception:
                self._stop()  # a fresh browser for the next export
                raise

    def _stop(self) -> None:
        kaleido, loop = self._kaleido, self._loop
        self._kaleido = self._loop = None
        if kaleido is not None and loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(kaleido.close(), loop).result(timeout=10)
            except Exception:  # noqa: BLE001 - closing a broken browser may fail too
                log.warning("kaleido browser did not close cleanly")
            loop.call_soon_threadsafe(loop.stop)

    def close(self) -> None:
        with self._lock:
            self._stop()


RENDERER = Renderer()
atexit.register(RENDERER.close)


def figure_bytes(fig: go.Figure, fmt: str, *, width: int = 1000) -> bytes:
    """PNG at scale 3 or SVG (vectors) of `fig`, rendered by the shared browser."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"format must be png or svg, not {fmt!r}")
    opts = {
        "format": fmt,
        "width": fig.layout.width or width,
        "height": fig.layout.height or 500,
        "scale": 3 if fmt == "png" else 1,
    }
    return RENDERER.render(fig.to_dict(), opts)
