"""Token references as people type them and as URLs carry them: ``#<id>`` or the token text.

Labels show a space as ``·`` (see ``theme.show_token``), so typed text maps ``·`` back to a
space: ``·Paris`` and `` Paris`` both mean the token " Paris".
"""

from __future__ import annotations

import re

from components.theme import show_token

_ID = re.compile(r"#(\d+)")


def to_wire(ref: str) -> str | int:
    """What the engine takes: an int for ``#<id>``, else the token's text."""
    m = _ID.fullmatch(ref.strip())
    return int(m.group(1)) if m else ref


def from_typed(text: str) -> str:
    """A typed reference in canonical form (``·``, ``⏎``, ``⇥`` back to whitespace)."""
    if _ID.fullmatch(text.strip()):
        return text.strip()
    return text.replace("·", " ").replace("⏎", "\n").replace("⇥", "\t")


def of_id(token_id: int) -> str:
    return f"#{token_id}"


def label(ref: str, texts: dict[int, str]) -> str:
    """How a reference is shown: its token text (when known) and id."""
    wire = to_wire(ref)
    if isinstance(wire, int):
        return f"{show_token(texts[wire])}  #{wire}" if wire in texts else f"#{wire}"
    return show_token(wire)
