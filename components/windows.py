"""Position windows of the views: which ``width`` positions of a long prompt a figure draws.

The window's first position is view state (``wstart`` in the URL, shared by every view);
with none set, the window ends at the selected position (the last token by default). The
engine clamps a window the same way (``engine.schemas.windows.clamp_window``).
"""

from __future__ import annotations

from engine.schemas.windows import clamp_window

ATTENTION = 40  # positions in an attention pattern (queries and keys)
CIRCUITSVIS = 20  # positions in circuitsvis's view of every head of a layer: it draws 12 heads
# of 32 x 32 in about twice the time of 16 x 16 or 20 x 20 (bench/RESULTS.md, the Attention page)
LENS = 20  # positions in the logit lens (a token of text in each cell)
OVERVIEW = 64  # cells a side of the attention overview at most (about 4 px each in its column)
DIFF = 32  # positions in the Diff page's KL strip and residual-difference grid
PROMPT = 20  # positions in the Prompt view's figure (a token in each cell) and position pickers


def window_of(start: int | None, pos: int, n: int, width: int) -> tuple[int, int]:
    """``[start, stop)`` of the window: from `start` if set, else ending at `pos`."""
    if start is None:
        start = pos - width + 1
    return clamp_window(max(0, start), width, n)


def centred_on(pos: int, n: int, width: int) -> int:
    """The window start that puts `pos` in the middle of a `width` window."""
    return clamp_window(max(0, pos - width // 2), width, n)[0]
