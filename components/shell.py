"""The app shell's Streamlit parts: engine link and banner, shared sidebar, engine calls."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from components import state
from components.connection import EngineLink
from engine.client import EngineRequestError, EngineUnavailable


@st.cache_resource(show_spinner=False)
def engine_link() -> EngineLink:
    """The one engine link of this app process, shared by all browser sessions."""
    return EngineLink()


def connect() -> EngineLink:
    """Make sure the engine answers; show a banner (and stop the page) when it does not."""
    link = engine_link()
    box = st.empty()

    def waiting(elapsed: float) -> None:
        box.info(
            f"Starting the engine and loading the model… {elapsed:.0f} s",
            icon=":material/hourglass_top:",
        )

    status = link.ensure(on_wait=waiting)
    box.empty()
    if not status.ok:
        st.error(f"**The engine is not reachable.** {status.message}", icon=":material/error:")
        if st.button("Retry", type="primary"):
            st.rerun()
        st.stop()
    if status.restarted or (status.started_here and st.session_state.get("seen_engine")):
        st.warning(
            "The engine restarted; results are being recomputed.", icon=":material/restart_alt:"
        )
    st.session_state["seen_engine"] = status.engine_id
    return link


def call(fn, *args: Any, **kwargs: Any) -> Any:
    """Call the engine; show engine errors in the page instead of a traceback."""
    try:
        return fn(*args, **kwargs)
    except EngineRequestError as e:
        st.error(f"{e.message}", icon=":material/warning:")
        st.stop()
    except EngineUnavailable:
        st.error("**The engine stopped answering.** Reconnecting…", icon=":material/error:")
        time.sleep(1.0)
        st.rerun()


def sidebar(link: EngineLink) -> dict:
    caps = call(link.client.capabilities)
    model = caps["model"]
    with st.sidebar:
        st.markdown("### Interpscope")
        if model:
            st.caption(
                f"**{model['name']}** · {model['n_layers']} layers × {model['n_heads']} heads · "
                f"d_model {model['d_model']} · context {model['n_ctx']} · {model['device']}"
                + (" · TransformerBridge" if model.get("path") == "bridge" else "")
            )
            for note in model.get("notes", []):
                st.caption(f":material/info: {note}")
        else:
            st.warning("No model loaded.")
        _prompt_box()
        _model_switcher(link)
        with st.expander("Cache"):
            stats = call(link.client.cache_stats)
            st.caption(
                f"hits {stats['hits']} · misses {stats['misses']} · memory {stats['memory_items']} "
                f"items · disk {stats['disk_items']} items, {stats['disk_bytes'] / 1e6:.1f} MB "
                f"of {stats['disk_limit_bytes'] / 1e6:.0f} MB"
            )
            if st.button("Clear cache"):
                call(link.client.clear_cache)
                st.rerun()
    return caps


def _prompt_box() -> None:
    def changed() -> None:
        state.put(prompt=st.session_state["w_prompt"], pos=None)

    if st.session_state.get("w_prompt") != state.get("prompt"):
        st.session_state["w_prompt"] = state.get("prompt")
    st.text_area("Prompt", key="w_prompt", on_change=changed, height=110)


def _estimate(link: EngineLink, name: str, dtype: str, cap: int | None) -> None:
    """The memory estimate, from the config alone, before anything is loaded."""
    try:
        est = link.client.estimate_model(name, dtype, cap)
    except EngineRequestError as e:  # an unknown name is not an error of the page
        st.caption(f":material/warning: {e.message}")
        return
    (st.caption if est["memory"]["fits"] else st.warning)(f"{est['summary']}.")
    for note in est["notes"]:
        st.caption(note)


def _model_switcher(link: EngineLink) -> None:
    with st.expander("Load another model"):
        name = st.text_input("TransformerLens name or local directory", placeholder="gpt2-small")
        dtype = st.selectbox("dtype", ["float32", "bfloat16", "float16"])
        cap = st.number_input("Context cap (tokens; 0: the engine's default)", 0, step=256)
        if name:
            _estimate(link, name, dtype, cap or None)
        if st.button("Load", disabled=not name):
            with st.spinner(f"Loading {name}…"):
                call(link.client.load_model, name, dtype, None, cap or None)
            st.rerun()
