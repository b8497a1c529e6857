"""Widgets shared by the views: a position picker and a figure with PNG/SVG export."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from components import state
from components.export import caption_text, figure_bytes, with_caption
from components.theme import show_token


def position_picker(tokens: list[dict], pos: int) -> int:
    """Click a token to select its position (kept in the URL, shared with other views)."""
    options = list(range(len(tokens)))

    def changed() -> None:
        value = st.session_state.get("w_pos")
        if value is not None:
            state.put(pos=int(value))

    st.session_state["w_pos"] = pos
    st.pills(
        "Position",
        options,
        format_func=lambda i: f"{i}:{show_token(tokens[i]['text'])}",
        selection_mode="single",
        key="w_pos",
        on_change=changed,
    )
    return state.clamp_pos(len(tokens))


def figure(fig: go.Figure, *, name: str, params: dict, on_select: bool = False) -> None:
    """Show `fig` with PNG (3x) and SVG downloads stamped with model, prompt and `params`."""
    caps = st.session_state.get("capabilities") or {}
    model = (caps.get("model") or {}).get("name", "unknown model")
    caption = caption_text(model, state.get("prompt"), params)
    config = {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "scale": 3, "filename": name},
    }
    if on_select:
        event = st.plotly_chart(
            fig, config=config, on_select="rerun", selection_mode="points", key=f"fig_{name}"
        )
        points = (event or {}).get("selection", {}).get("points", [])
        if points and "x" in points[0] and points[0]["x"] != state.get("pos"):
            state.put(pos=int(points[0]["x"]))
            st.rerun()
    else:
        st.plotly_chart(fig, config=config, key=f"fig_{name}")
    st.caption(caption)
    cols = st.columns([1, 1, 6])
    for col, fmt in zip(cols, ("png", "svg"), strict=False):
        col.download_button(
            f"{fmt.upper()}",
            data=lambda fmt=fmt: figure_bytes(with_caption(fig, caption), fmt),
            file_name=f"{name}.{fmt}",
            mime="image/png" if fmt == "png" else "image/svg+xml",
            key=f"dl_{name}_{fmt}",
            icon=":material/download:",
            on_click="ignore",
        )
