"""Widgets shared by the views: position picker, token pickers, figures with export and clicks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from components import attention_vis, presenter, state, token_refs, windows
from components.bundles import BundleSpec, figure_bundle
from components.export import caption_text, export_figure, figure_bytes
from components.safe import md
from components.theme import presenter_copy, show_token
from engine.schemas.common import TokenInfo
from engine.schemas.model import ModelInfo

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
OnClick = Callable[[dict], dict[str, Any]]  # a clicked point -> view state to set


def position_window(n_tokens: int, width: int, pos: int) -> tuple[int, int]:
    """``[start, stop)``: the positions a figure draws, from a slider over the prompt when it is
    longer than `width` (the start is view state ``wstart``, shared by every view)."""
    start, stop = windows.window_of(state.get("wstart"), pos, n_tokens, width)
    if n_tokens <= width:
        return start, stop

    def changed() -> None:
        state.put(wstart=int(st.session_state["w_wstart"]))

    st.session_state["w_wstart"] = start
    st.slider(
        f"Positions shown ({width} of {n_tokens}): first position",
        0, n_tokens - width, key="w_wstart", on_change=changed,
        help="Slide the window over the prompt; every view keeps it.",
    )  # fmt: skip
    return windows.window_of(state.get("wstart"), pos, n_tokens, width)


def position_picker(
    tokens: list[TokenInfo], pos: int, window: tuple[int, int] | None = None
) -> int:
    """Click a token to select its position (kept in the URL, shared with other views); only
    the tokens of `window` ``[start, stop)`` are offered when given."""
    options = list(range(*(window or (0, len(tokens)))))

    def changed() -> None:
        value = st.session_state.get("w_pos")
        if value is not None:
            state.put(pos=int(value))

    st.session_state["w_pos"] = pos
    st.pills(
        "Position",
        options,
        format_func=lambda i: f"{i}:{show_token(tokens[i].text)}",
        selection_mode="single",
        key="w_pos",
        on_change=changed,
    )
    return state.clamp_pos(len(tokens))


def bound(field: str, widget: Callable[..., Any], label: str, **kwargs: Any) -> Any:
    """`widget` (selectbox, segmented control, ...) showing and setting view field `field`."""
    key = f"w_{field}"

    def changed() -> None:
        state.put(**{field: st.session_state.get(key)})

    st.session_state[key] = state.get(field)
    return widget(label, key=key, on_change=changed, **kwargs)


def token_choice(
    field: str, label: str, suggestions: dict[int, str], *, default: str, multi: bool = False
) -> Any:
    """Pick token(s) among `suggestions` {id: text} or type one (text, ``·`` for a space, or
    ``#<id>``); the choice is kept as token references in view field `field`."""
    key = f"w_{field}"
    current = state.get(field) or ([] if multi else None)
    chosen = current if multi else [current] if current else []
    options = list(dict.fromkeys([token_refs.of_id(i) for i in suggestions] + chosen))

    def changed() -> None:
        value = st.session_state.get(key)
        if multi:
            state.put(**{field: [token_refs.from_typed(v) for v in value or []]})
        else:
            state.put(**{field: token_refs.from_typed(value) if value else None})

    st.session_state[key] = current
    widget = st.multiselect if multi else st.selectbox
    extra = {"max_selections": 10} if multi else {"index": None}
    return widget(
        label,
        options,
        key=key,
        on_change=changed,
        format_func=lambda r: token_refs.label(r, suggestions),
        accept_new_options=True,
        placeholder=default,
        **extra,
    )


def figure(
    fig: go.Figure,
    *,
    name: str,
    params: dict,
    on_click: OnClick | None = None,
    bundle: BundleSpec | None = None,
    prompt: str | None = None,
    model_info: ModelInfo | None = None,
) -> None:
    """Show `fig` with PNG (3x) and SVG downloads stamped with model, prompt and `params`,
    and with `bundle`, a zip of the images, the data and a snippet that recomputes it.
    `prompt` is the figure's prompt where it is not the view's (a saved graph's), `model_info`
    its model where it is not the primary one (compare mode's model B).
    With `on_click`, clicking a point sets the view state it returns. In presenter mode the
    figure takes the large-font template and the downloads are left out."""
    caps = st.session_state.get("capabilities")
    info = model_info or (caps.model if caps is not None else None)
    model = info.name if info is not None else "unknown model"
    prompt = state.get("prompt") if prompt is None else prompt
    caption = caption_text(model, prompt, params)
    shown, theme = fig, "streamlit"
    if presenter.active():  # our large-font template, not Streamlit's plotly theme
        shown, theme = presenter_copy(fig), None
    config = {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "scale": 3, "filename": name},
    }
    key = f"fig_{name}"
    if on_click:

        def clicked() -> None:  # runs before the rerun, so the page draws once, updated
            points = st.session_state[key]["selection"]["points"]
            if points:
                state.put(**on_click(points[0]))

        st.plotly_chart(
            shown, config=config, on_select=clicked, selection_mode="points", key=key, theme=theme
        )
    else:
        st.plotly_chart(shown, config=config, key=key, theme=theme)
    st.caption(md(caption))
    if not presenter.active():
        _downloads(fig, name=name, caption=caption, params=params, bundle=bundle, prompt=prompt,
                   info=info)  # fmt: skip


def _downloads(
    fig: go.Figure,
    *,
    name: str,
    caption: str,
    params: dict,
    bundle: BundleSpec | None,
    prompt: str,
    info: ModelInfo | None = None,
) -> None:
    row = st.container(horizontal=True)
    for fmt in ("png", "svg"):
        row.download_button(
            f"{fmt.upper()}",
            data=lambda fmt=fmt: figure_bytes(export_figure(fig, caption), fmt),
            file_name=f"{name}.{fmt}",
            mime="image/png" if fmt == "png" else "image/svg+xml",
            key=f"dl_{name}_{fmt}",
            icon=":material/download:",
            on_click="ignore",
        )
    if bundle is not None:
        row.download_button(
            "Figure bundle",
            data=lambda: figure_bundle(
                fig,
                bundle,
                name=name,
                caption=caption,
                params=params,
                prompt=prompt,
                model_info=info,
            ),
            file_name=f"{name}.zip",
            mime="application/zip",
            key=f"dl_{name}_zip",
            icon=":material/folder_zip:",
            help="PNG, SVG, the data (JSON, CSV) and a Python snippet that recomputes it",
            on_click="ignore",
        )


@st.cache_resource(show_spinner=False)
def circuitsvis_bundle_url() -> str | None:
    """Where the browser loads circuitsvis from: the app's static folder when Streamlit serves
    it (set INTERPSCOPE_CIRCUITSVIS=inline to inline the bundle instead), else None."""
    if os.environ.get("INTERPSCOPE_CIRCUITSVIS") == "inline":
        return None
    if not st.get_option("server.enableStaticServing"):
        return None
    return attention_vis.install_bundle(STATIC_DIR)


def attention_heads(tokens: list[str], patterns: attention_vis.Patterns, layer: int) -> None:
    """circuitsvis AttentionHeads of one layer, offline (see ``components.attention_vis``)."""
    names = [f"L{layer}H{h}" for h in range(len(patterns))]
    page = attention_vis.attention_heads_html(
        tokens, patterns, names, bundle_url=circuitsvis_bundle_url()
    )
    st.iframe(page, height="content")
