"""Position windows: a view asks for the positions it draws, never the whole prompt.

A window is ``width`` consecutive positions from ``start``. The engine clamps it into the
prompt (a window past the end slides back so it stays ``width`` wide when the prompt is long
enough) and answers with the ``[start, stop)`` it used and the prompt's length.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_WIDTH = 256


class WindowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = Field(default=0, ge=0, description="first position of the window")
    width: int = Field(default=48, ge=1, le=MAX_WIDTH, description="positions in the window")


class WindowInfo(BaseModel):
    n_tokens: int = Field(description="positions in the whole prompt")
    start: int = Field(description="first position answered")
    stop: int = Field(description="one past the last position answered")


def clamp_window(start: int, width: int, n: int) -> tuple[int, int]:
    """``[start, stop)`` of `width` positions from `start`, moved back inside ``[0, n)``."""
    stop = min(n, start + width)
    start = max(0, min(start, stop - width))
    return start, stop
