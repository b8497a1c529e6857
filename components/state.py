"""View state (prompt, pos, layer, head) kept in ``st.query_params``: every view is a URL.

The canonical values live in ``st.session_state["view"]``; on a session's first run they are
read from the URL, and on every run they are written back to it, so links carry the state
across pages and into bookmarks.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"
FIELDS: dict[str, type] = {"prompt": str, "pos": int, "layer": int, "head": int}


def _parse(key: str, raw: str) -> Any:
    try:
        return FIELDS[key](raw)
    except ValueError:
        return None


def init() -> dict[str, Any]:
    if "view" not in st.session_state:
        view: dict[str, Any] = {"prompt": DEFAULT_PROMPT, "pos": None, "layer": 0, "head": 0}
        for key in FIELDS:
            if key in st.query_params:
                value = _parse(key, st.query_params[key])
                if value is not None:
                    view[key] = value
        st.session_state["view"] = view
    return st.session_state["view"]


def get(key: str) -> Any:
    return init()[key]


def put(**values: Any) -> None:
    init().update(values)
    write_url()


def write_url() -> None:
    for key, value in init().items():
        if value is None or value == "":
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != str(value):
            st.query_params[key] = str(value)


def clamp_pos(n_tokens: int) -> int:
    """The selected position, defaulting to (and clamped to) the last token."""
    pos = get("pos")
    if pos is None or not 0 <= pos < n_tokens:
        pos = n_tokens - 1
    return pos
