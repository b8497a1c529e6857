"""View state kept in ``st.query_params``: every view is a URL.

The canonical values live in ``st.session_state["view"]``; on a session's first run they are
read from the URL, and on every run they are written back to it, so links carry the state
across pages and into bookmarks. ``pos``, ``layer``, ``head`` and ``wstart`` (the position
window) are shared by every view (selecting one in a view sets it in the others); the rest
belong to one view each.
Token references (``target``, ``baseline``, ``targets``) are ``#<id>`` or a token's text.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"
FIELDS: dict[str, type] = {
    "prompt": str,
    "pos": int,
    "layer": int,
    "head": int,
    "wstart": int,  # the first position of the position window every figure draws
    "compare": str,  # Attention: a second head, "L.H"
    "score": str,  # Attention: the head score in the overview
    "stage": str,  # Logit lens: resid_pre / resid_mid / resid_post
    "targets": list,  # Logit lens: tokens followed down the layers
    "target": str,  # DLA: the token whose logit is attributed
    "baseline": str,  # DLA: subtract this token's logit
    "present": int,  # presenter mode: 1 = large fonts, no sidebar or chrome
    "tour": str,  # the tour being stepped through (a file in assets/tours)
    "step": int,  # the tour step shown
    "graph": str,  # Graph: the saved graph shown (its slug), or "auto": the prompt's, made on demand
    "gthr": float,  # Graph: node pruning threshold (cumulative influence)
    "gnode": str,  # Graph: the clicked node's id
    "pinned": list,  # Graph: pinned node ids (the subgraph)
    "snodes": list,  # Graph: supernodes, each "name|node_id|node_id..."
    "corrupt": str,  # Graph: the corrupted prompt of a component graph
    "sae": str,  # SAE latents: the SAE shown (its id; the hook point for bundled SAEs)
    "latent": int,  # SAE latents: the selected latent of that SAE
    "exset": str,  # SAE latents: a computed example set instead of the shipped examples
    "lsearch": str,  # SAE latents: the latent search query
    "lsearchby": str,  # SAE latents: search by "label" or "token"
    "steer": str,  # Steering: the setup (vectors, coefficients, hook points), base64 JSON
    "slen": int,  # Steering: new tokens generated
    "stemp": float,  # Steering: sampling temperature (0 = greedy)
    "sseed": int,  # Steering: sampling seed, shared by baseline and steered
    # Compare mode (issue 14): model B (loaded into the engine's slot "b") or prompt B
    "model_b": str,  # a second model: a TransformerLens name or a local directory
    "prompt_b": str,  # a second prompt on the same model (compared position by position)
    "side": str,  # what the views show: "a", "b" or "diff" (where a view can)
    "probe": str,  # Probes: the sweep shown (its key in the engine's cache)
    "dir": str,  # Directions: the saved direction acted on
}
# Steering also takes ``add_latent=sae:<hook>:<index>`` / ``transcoder:<layer>:<index>``: a
# command, not state: the page adds that latent to ``steer`` and drops the param.
SESSION_KEYS = ("present", "tour", "step")  # kept when a tour step loads a view
DEFAULTS: dict[str, Any] = {
    "prompt": DEFAULT_PROMPT,
    "layer": 0,
    "head": 0,
    "score": "prev_token",
    "stage": "resid_post",
    "targets": [],
    "gthr": 0.8,
    "pinned": [],
    "snodes": [],
}


def _parse(key: str, raw: str) -> Any:
    try:
        return FIELDS[key](raw)
    except ValueError:
        return None


def _from_url(key: str) -> Any:
    if FIELDS[key] is list:
        return st.query_params.get_all(key) or None
    return _parse(key, st.query_params[key]) if key in st.query_params else None


def init() -> dict[str, Any]:
    if "view" not in st.session_state:
        st.session_state["fresh_visit"] = not any(key in st.query_params for key in FIELDS)
        view = {key: DEFAULTS.get(key) for key in FIELDS}
        for key in FIELDS:
            value = _from_url(key)
            if value is not None:
                view[key] = value
        st.session_state["view"] = view
    return st.session_state["view"]


def get(key: str) -> Any:
    return init()[key]


def put(**values: Any) -> None:
    init().update(values)
    write_url()


def load(query: dict[str, list[str]]) -> None:
    """Replace the view state with `query` (a parsed URL query), defaults for the rest."""
    view = init()
    fresh = {key: DEFAULTS.get(key) for key in FIELDS if key not in SESSION_KEYS}
    for key, values in query.items():
        if key in fresh and values:
            fresh[key] = list(values) if FIELDS[key] is list else _parse(key, values[-1])
    view.update(fresh)
    write_url()


def write_url() -> None:
    for key, value in init().items():
        if value is None or value == "" or value == []:
            st.query_params.pop(key, None)
        elif isinstance(value, list):
            if st.query_params.get_all(key) != [str(v) for v in value]:
                st.query_params[key] = [str(v) for v in value]
        elif st.query_params.get(key) != str(value):
            st.query_params[key] = str(value)


def clamp_pos(n_tokens: int) -> int:
    """The selected position, defaulting to (and clamped to) the last token."""
    pos = get("pos")
    if pos is None or not 0 <= pos < n_tokens:
        pos = n_tokens - 1
    return pos


def clamp(key: str, count: int) -> int:
    """The selected layer or head, clamped to what the model has."""
    value = get(key) or 0
    return min(max(value, 0), count - 1)
