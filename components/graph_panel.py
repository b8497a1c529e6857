"""The Graph view's side panel: the clicked node (a latent's label, top examples, logit
effect, and a link to steer with it), pins and supernodes.

Supernodes travel in the URL as ``name|node_id|node_id...`` and in the graph file's qParams
as circuit-tracer keeps them, ``[name, node_id, ...]``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from urllib.parse import urlencode

import streamlit as st

from components import graph_figures as gf
from components.safe import h, md
from components.theme import show_token
from engine.client import EngineClient, EngineRequestError
from engine.schemas.saes import Example


def decode_supernodes(values: list[str]) -> list[list[str]]:
    return [v.split("|") for v in values if "|" in v]


def encode_supernodes(groups: list[list[str]]) -> list[str]:
    return ["|".join(g) for g in groups]


Pins = tuple[list[str], list[list[str]]]


def save_qparams(
    client: EngineClient,
    slug: str,
    change: Callable[[list[str], list[list[str]]], Pins],
    base: Pins,
    version: int | None,
    clicked: str = "",
    tries: int = 40,
) -> dict:
    """Save one pin edit (`change`: pins and supernodes -> new ones) made on `base` at
    `version`. If someone saved the graph's pins since (409), the edit is applied again to
    theirs, so two people pinning at once both keep their pins. The saved qParams."""
    pins, groups = change(*base)
    for attempt in range(tries):
        try:
            return client.set_graph_qparams(slug, pins, groups, clicked, version=version)
        except EngineRequestError as e:
            if e.code != "stale_qparams":
                raise
            # racing sessions part: random waits, doubling up to half a second, so one that
            # keeps losing is not starved by the others (8 at once on a loaded machine did)
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))
            saved, version = e.detail["qParams"], e.detail["version"]
            pins, groups = change(
                list(saved.get("pinnedIds", [])), list(saved.get("supernodes", []))
            )
    raise EngineRequestError(409, "stale_qparams", "The pins kept changing: try again.")


def steer_url(layer: int, index: int, prompt: str) -> str:
    """The steering page, preloaded with this transcoder latent (issue 5's contract)."""
    return "steering?" + urlencode({"add_latent": f"transcoder:{layer}:{index}", "prompt": prompt})


def _example_html(ex: Example) -> str:
    top = max(ex.acts) or 1.0
    spans = []
    for i, (tok, act) in enumerate(zip(ex.tokens, ex.acts, strict=True)):
        alpha = max(0.0, act / top)
        weight = "700" if i == ex.max_pos else "400"
        spans.append(
            f'<span style="background: rgba(106,81,163,{alpha:.2f}); font-weight:{weight}" '
            f'title="{act:.3f}">{h(tok)}</span>'
        )
    style = "font-size: 0.8em; line-height: 1.5; margin: 3px 0; padding: 2px 4px; border-left: 2px solid #ccc"
    return f"<div style='{style}'>" + "".join(spans) + "</div>"


def latent_panel(client: EngineClient, prompt: str, node: dict) -> None:
    layer, index = int(node["layer"]), gf.latent_index(node)
    st.markdown(f"**Latent L{layer}#{index}** at pos {node['ctx_idx']}")
    if node.get("activation") is not None:
        st.caption(f"activation {node['activation']:.3f} · influence {node['influence']:.3f}")
    try:
        d = client.analyze(
            "latent_detail", prompt, source="transcoder", layer=layer, index=index, n_logits=6
        )
    except EngineRequestError as e:
        st.caption(f"{md(node.get('clerp') or 'no label')} · details unavailable: {md(e.message)}")
        d = None
    if d:
        st.markdown(f"Label: **{md(d.label or 'none')}**")
        up = md(", ".join(show_token(t.text) for t in d.top_logits))
        down = md(", ".join(show_token(t.text) for t in d.bottom_logits))
        st.markdown(f"Logit effect (W_dec · W_U): ↑ {up}  \n↓ {down}")
        st.caption(f"Top examples ({md(d.examples_over)})")
        st.html("".join(_example_html(ex) for ex in d.examples[:4]))
    st.link_button(
        "Steer with this latent", steer_url(layer, index, prompt), icon=":material/tune:"
    )


def links_table(doc: dict, node_id: str) -> None:
    into, out = gf.neighbours(doc, node_id, k=6)
    labels = {n["node_id"]: gf.label(n) for n in doc["nodes"]}
    rows = [{"from": labels.get(lk["source"], lk["source"]), "to": "this", "weight": lk["weight"]}
            for lk in into] + [
           {"from": "this", "to": labels.get(lk["target"], lk["target"]), "weight": lk["weight"]}
            for lk in out]  # fmt: skip
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
