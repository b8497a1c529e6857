"""The app shell's Streamlit parts: engine link and banner, shared sidebar, engine calls."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import streamlit as st

from components import compare, state
from components.connection import EngineLink
from components.safe import md
from engine.client import EngineRequestError, EngineUnavailable
from engine.patience import describe
from engine.schemas.model import Capabilities, Health
from engine.security import HOST_HEADER, allowed_hosts, split_host
from engine.settings import EngineSettings


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

    def slow(elapsed: float) -> None:
        box.info(
            f"The engine is running but slow to answer; waiting… {elapsed:.0f} s",
            icon=":material/hourglass_top:",
        )

    status = link.ensure(on_wait=waiting, on_slow=slow)
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
    _busy_notices(link, box)
    return link


def refuse_foreign_host() -> None:
    """DNS rebinding: a page on another site whose name resolves to this machine reaches the app
    under that name and could drive it (and, through it, the engine). Only the app's own names
    are served, as the engine's guard does (engine/security.py): loopback names, the bound
    address, the machine's name when bound to every interface, and ``INTERPSCOPE_ALLOWED_HOSTS``.
    A run without a Host header (no browser: AppTest) is served."""
    host = st.context.headers.get("Host")
    if host is None:
        return
    settings = EngineSettings(host=st.get_option("server.address") or "0.0.0.0")
    known = "*" in settings.allowed_hosts or split_host(host)[0] in allowed_hosts(settings)
    if known and HOST_HEADER.match(host.strip()):
        return
    st.error(
        f"This app does not answer to the host name {md(split_host(host)[0])}. If you reach it "
        "under that name on purpose, add it to INTERPSCOPE_ALLOWED_HOSTS (README: Exposing the "
        "app).",
        icon=":material/block:",
    )
    st.stop()


def _busy_notices(link: EngineLink, box) -> None:
    """While this run waits for a busy engine, say what it is busy with (top of the page)."""

    def busy(health: Health | None) -> None:
        if health is None:
            box.empty()
        else:
            box.info(
                f"The engine is {describe(health)}; this view's request is queued and runs "
                "between its steps…",
                icon=":material/hourglass_top:",
            )

    link.client.patience.set_callback(busy)  # for this script run's thread


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Around a page: an engine error that a page did not handle shows as in `call` (a banner,
    then reconnecting), never as a traceback."""
    try:
        yield
    except EngineRequestError as e:
        st.error(md(e.message), icon=":material/warning:")  # messages may quote the request
    except EngineUnavailable:
        reconnect()


def call(fn, *args: Any, **kwargs: Any) -> Any:
    """Call the engine; show engine errors in the page instead of a traceback."""
    try:
        return fn(*args, **kwargs)
    except EngineRequestError as e:
        st.error(md(e.message), icon=":material/warning:")  # messages may quote the request
        st.stop()
    except EngineUnavailable:
        reconnect()


def reconnect() -> None:
    st.error("**The engine stopped answering.** Reconnecting…", icon=":material/error:")
    time.sleep(1.0)
    st.rerun()


def sidebar(link: EngineLink) -> Capabilities:
    caps = call(link.client.capabilities)
    model = caps.model
    with st.sidebar:
        st.markdown("### Interpscope")
        if model:
            st.caption(
                f"**{md(model.name)}** · {model.n_layers} layers × {model.n_heads} heads · "
                f"d_model {model.d_model} · context {model.n_ctx} · {model.device}"
                + (" · TransformerBridge" if model.path == "bridge" else "")
            )
            for note in model.notes:
                st.caption(f":material/info: {note}")
        else:
            st.warning("No model loaded.")
        _prompt_box()
        _model_switcher(link)
        compare.sidebar_panel(link.client)  # compare mode (issue 14): model B or prompt B
        if model:
            from components.directions_panel import sidebar_list

            sidebar_list(link.client)
        with st.expander("Cache"):
            stats = call(link.client.cache_stats)
            st.caption(cache_summary(stats))
            if stats.get("disk_error"):
                st.warning(md(stats["disk_error"]), icon=":material/warning:")
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
        st.caption(f":material/warning: {md(e.message)}")
        return
    (st.caption if est.memory.fits else st.warning)(md(f"{est.summary}."))
    for note in est.notes:
        st.caption(md(note))


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


def cache_summary(stats: dict) -> str:
    """The cache panel's line: hits, and each store's bytes against its limit (settings
    ``memory_cache_mb``, ``cache_size_mb``, ``graphs_size_mb``)."""
    mb = lambda n: f"{(n or 0) / 1e6:.1f}"  # noqa: E731
    graphs = (
        f" · saved graphs {mb(stats['graphs_bytes'])} of {mb(stats['graphs_limit_bytes'])} MB"
        if stats.get("graphs_limit_bytes") else ""
    )  # fmt: skip
    return (
        f"hits {stats['hits']} · misses {stats['misses']} · memory {stats['memory_items']} items, "
        f"{mb(stats['memory_bytes'])} of {mb(stats.get('memory_limit_bytes'))} MB · disk "
        f"{stats['disk_items']} items, {mb(stats['disk_bytes'])} of "
        f"{mb(stats['disk_limit_bytes'])} MB{graphs}"
    )
