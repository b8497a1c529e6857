"""Compare mode (issue 14): model B (the engine's slot ``b``) or prompt B, picked once in the
sidebar and kept in the URL (``model_b=`` / ``prompt_b=``), so a comparison is a shareable link.
Every view that can shows side A, side B or their difference with one toggle (``side=``).

The pure part (``Comparison``: what each side runs on, the pair request's fields) is tested on
its own; the Streamlit part (the sidebar panel, loading model B, the toggle) holds widgets only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from components import state
from components.safe import md
from engine.client import EngineClient, EngineRequestError
from engine.schemas.common import TokenizeResponse
from engine.schemas.model import ModelInfo

SLOT_B = "b"  # the engine's slot model B is loaded into (slot "a" is the primary model)
SIDES = ("a", "b", "diff")
MODES = ("nothing", "another model", "another prompt")


@dataclass(frozen=True)
class Comparison:
    """What the page compares: model B on the same prompt, or prompt B on the same model."""

    model_b: str | None = None
    prompt_b: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.model_b or self.prompt_b)

    @property
    def mode(self) -> str:
        return MODES[1] if self.model_b else MODES[2] if self.prompt_b else MODES[0]

    def pair(self) -> dict[str, Any]:
        """The pair analyses' field naming side B: another slot, or another prompt."""
        if self.model_b:
            return {"model_b": SLOT_B}
        if self.prompt_b:
            return {"prompt_b": self.prompt_b}
        raise ValueError("no comparison: pick model B or prompt B")

    def run_on(self, side: str, prompt: str) -> tuple[str, str]:
        """(prompt, slot) of a side: B is the same prompt on slot b, or prompt B on slot a."""
        if side != "b" or not self.active:
            return prompt, "a"
        return (prompt, SLOT_B) if self.model_b else (self.prompt_b or prompt, "a")

    def label(self, side: str, model_a: str = "A") -> str:
        """A side's name in titles: "A: organism", "B: organism-chat", "B − A"."""
        if side == "diff":
            return "B − A"
        if side == "b":
            return f"B: {short_name(self.model_b)}" if self.model_b else "B: prompt B"
        return f"A: {short_name(model_a)}" if self.model_b else "A: prompt A"


def short_name(ref: str | None) -> str:
    """A model's short name: the last part of a directory path or hub name."""
    ref = (ref or "").rstrip("/")
    return ref.rsplit("/", 1)[-1] or ref


def current() -> Comparison:
    return Comparison(model_b=state.get("model_b") or None, prompt_b=state.get("prompt_b") or None)


def side_options(can_diff: bool) -> list[str]:
    return list(SIDES if can_diff else SIDES[:2])


def side_of(value: str | None, can_diff: bool) -> str:
    """The side shown: the URL's when this view offers it, else A."""
    return value if value in side_options(can_diff) else "a"


# --- engine calls with the model slot -------------------------------------------------------
def analyze(client: EngineClient, name: str, prompt: str, model: str = "a", **params: Any) -> Any:
    """An analysis on slot `model` (the request's ``model`` field, issue 14): its result model."""
    return client.analyze(name, prompt, model=model, **params)


def pair(client: EngineClient, name: str, prompt: str, cmp: Comparison, **params: Any) -> Any:
    """A pair analysis (diff_tokens, diff_resid, diff_components, diff_latents) of A and B:
    the request names side B with ``model_b`` or ``prompt_b`` next to ``prompt``."""
    return client.analyze(name, prompt, **cmp.pair(), **params)


def tokenize(client: EngineClient, prompt: str, model: str = "a") -> TokenizeResponse:
    return client.tokenize(prompt, True, model=model)


def link_query(query: dict[str, list[str]], **changes: Any) -> str:
    """A relative link's query: `query` (the page's URL params) with `changes` (None drops)."""
    out = {k: list(v) for k, v in query.items()}
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = [str(v)]
    return urlencode(out, doseq=True)


def link(page: str, **changes: Any) -> str:
    """A link to another view with this view's URL state (compare mode included) and `changes`."""
    query = {k: st.query_params.get_all(k) for k in st.query_params}
    return f"{page}?{link_query(query, **changes)}"


def model_info(client: EngineClient, slot: str) -> ModelInfo | None:
    """The model of a slot (its capabilities' ``model``), kept for this script run."""
    kept = st.session_state.setdefault("_slot_info", {})
    key = f"{slot}:{current().model_b}"  # another model B: asked again
    if key not in kept:
        kept[key] = client.capabilities(model=slot).model
    return kept[key]


def figure_side(client: EngineClient, side: str, prompt: str) -> dict[str, Any]:
    """``widgets.figure``'s arguments for a figure of side `side`: its prompt and, on model B,
    its model (caption and bundle name the model that made the figure)."""
    cmp = current()
    if side != "b" or not cmp.active:
        return {}
    if cmp.model_b:
        return {"model_info": model_info(client, SLOT_B)}
    return {"prompt": prompt}


# --- Streamlit: the sidebar panel and the toggle --------------------------------------------
def sidebar_panel(client: EngineClient) -> None:
    """The sidebar's *Compare* panel: nothing, model B or prompt B (into the URL), then make
    sure model B is loaded in slot b and comparable with A (else the engine's reason)."""
    cmp = current()
    with st.expander("Compare", expanded=cmp.active):
        mode = st.radio("Compare with", MODES, index=MODES.index(cmp.mode), key="w_cmp_mode",
                        horizontal=True)  # fmt: skip
        if mode == MODES[1]:
            name = st.text_input(
                "Model B (TransformerLens name or local directory)", value=cmp.model_b or "",
                placeholder="assets/organism-chat", key="w_model_b",
            )  # fmt: skip
            if name.strip() != (cmp.model_b or ""):
                state.put(model_b=name.strip() or None, prompt_b=None)
        elif mode == MODES[2]:
            text = st.text_area("Prompt B", value=cmp.prompt_b or state.get("prompt"),
                                key="w_prompt_b", height=90)  # fmt: skip
            if text != (cmp.prompt_b or "") or cmp.model_b:
                state.put(prompt_b=text or None, model_b=None)
        elif cmp.active:
            state.put(model_b=None, prompt_b=None)
        cmp = current()
        if cmp.model_b:
            _ensure_model_b(client, cmp.model_b)
        if cmp.active and (why := not_comparable(client, state.get("prompt"), cmp)):
            st.warning(md(why), icon=":material/block:")
        elif cmp.active:
            st.caption(
                "Views show A, B or B − A with the toggle at their top (`side=` in the URL)."
            )


def not_comparable(client: EngineClient, prompt: str, cmp: Comparison) -> str | None:
    """Why the engine refuses to compare A and B on `prompt` (another tokenizer, another
    number of tokens, ...), or None: one position of ``diff_tokens``, answered from the pair's
    kept runs after the first time."""
    try:
        pair(client, "diff_tokens", prompt, cmp, top_k=1, start=0, width=1)
    except EngineRequestError as e:
        if e.status == 422:
            return e.message
        raise
    return None


def _ensure_model_b(client: EngineClient, name: str) -> None:
    """Load `name` into slot b unless it is there (a shared link loads it on first open)."""
    try:
        loaded = {m.slot: m.model for m in client.models()}
    except EngineRequestError as e:
        st.warning(md(e.message), icon=":material/warning:")
        return
    have = loaded.get(SLOT_B)
    if have is None or name not in (have.ref, have.name) and not _same_ref(have, name):
        with st.spinner(f"Loading model B ({name}) into slot b…"):
            try:
                load_model_b(client, name)
            except EngineRequestError as e:
                st.error(f"Model B could not be loaded: {md(e.message)}", icon=":material/error:")
                return
    st.caption(f"Model B: **{md(short_name(name))}** (slot b)")


def _same_ref(info: ModelInfo, name: str) -> bool:
    from pathlib import Path

    ref = info.ref or info.name or ""
    try:
        return Path(ref).resolve() == Path(name).resolve()
    except OSError:
        return False


def load_model_b(client: EngineClient, name: str) -> None:
    client.load_model(name, slot=SLOT_B)
    st.session_state.pop("_slot_info", None)


def side_toggle(
    *, can_diff: bool = True, why_not: str | None = None, diff_label: str = "difference (B − A)"
) -> str:
    """The view's A / B / difference toggle (``side=``); A when nothing is compared. Where the
    difference is not offered, `why_not` says why under the toggle."""
    cmp = current()
    if not cmp.active:
        return "a"
    options = side_options(can_diff)
    if state.get("side") not in options:
        state.put(side="a")

    def changed() -> None:
        state.put(side=st.session_state.get("w_side") or "a")

    st.session_state["w_side"] = state.get("side")
    caps = st.session_state.get("capabilities")
    name_a = caps.model.name if caps is not None and caps.model else "A"
    side = st.segmented_control(
        "Show", options, key="w_side", on_change=changed,
        format_func=lambda s: diff_label if s == "diff" else cmp.label(s, name_a),
    )  # fmt: skip
    if not can_diff and why_not:
        st.caption(f"No difference here: {why_not}")
    return side_of(side, can_diff)


def not_here(why: str) -> None:
    """In compare mode, a view without the A / B / difference toggle says why."""
    if current().active:
        st.caption(f":material/compare_arrows: Compare mode: {why}")
