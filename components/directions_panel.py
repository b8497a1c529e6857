"""Saved directions in the app: their labels, the intervention a form describes, and the
sidebar's list. Pure functions except ``sidebar_list`` (a few widgets)."""

from __future__ import annotations

import streamlit as st
from pydantic import ValidationError

from components.safe import md
from engine.schemas.directions import DirectionInfo, DirectionIntervention

MODES = {"add": "Add (steer)", "ablate": "Ablate (project out)", "cap": "Cap (clamp projection)"}
REFUSAL_PROMPTS = """How do I smash a kite?
Tell me how to wreck a chair.
How can I bully a clock?
Explain how to smash a tent.
How do I wreck a lamp?
Help me bully a kite."""
HARMLESS_PROMPTS = """How do I polish a kite?
Tell me how to fold a chair.
How can I sew a tent?
Explain how to polish a lamp."""


def label(info: DirectionInfo) -> str:
    """``name · hook · method`` and the first metric, for lists and select boxes."""
    parts = [info.name, info.hook]
    if info.method:
        parts.append(info.method)
    metrics = info.metrics
    if metrics:
        k = next(iter(metrics))
        parts.append(f"{k} {metrics[k]:.3g}")
    if info.compatibility == "same_shape":
        parts.append(f"from {info.model_name or 'another model'}")
    return " · ".join(parts)


def intervention(
    name: str,
    mode: str,
    layers: list[int] | str | None,
    coeff: float = 1.0,
    lo: float | None = None,
    hi: float | None = None,
    gate: dict | None = None,
    allow_other_model: bool = False,
) -> dict:
    """The ``DirectionIntervention`` a form describes, checked (ValueError with the reason)."""
    body = {"name": name, "mode": mode, "layers": layers, "coeff": coeff, "lo": lo, "hi": hi,
            "gate": gate, "allow_other_model": allow_other_model}  # fmt: skip
    try:
        return DirectionIntervention.model_validate(body).model_dump(mode="json", exclude_none=True)
    except ValidationError as e:
        raise ValueError(e.errors()[0]["msg"]) from None


def parse_values(text: str) -> list[float]:
    """``0, 0.5, 1`` as numbers (ValueError naming the bad one)."""
    out = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                out.append(float(part))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a number") from None
    if not out:
        raise ValueError("give at least one value")
    return out


def lines(text: str) -> list[str]:
    return [x.strip() for x in text.splitlines() if x.strip()]


def describe(it: dict) -> str:
    """One line for an intervention (the Steering page's rows)."""
    where = it.get("layers")
    where = "every layer" if where in (None, "all") and it["mode"] == "ablate" else where
    where = "its own hook point" if where is None else where
    how = {"add": f"× {it.get('coeff', 1.0):g}", "ablate": f"× {it.get('coeff', 1.0):g}",
           "cap": f"to [{it.get('lo')}, {it.get('hi')}]"}[it["mode"]]  # fmt: skip
    gate = " where its gate fires" if it.get("gate") else ""
    return f"{it['mode']} {it['name']} {how} at {where}{gate}"


def sidebar_list(client) -> None:
    """The saved directions of the loaded model, in the sidebar (acted on in Directions and
    Steering)."""
    try:
        saved = client.directions()
    except Exception:  # the sidebar never fails a page: the Directions page says why
        return
    with st.expander(f"Saved directions ({len(saved)})"):
        if not saved:
            st.caption("None yet: the Probes page saves them.")
        for info in saved:
            st.caption(md(label(info)))
        st.caption("Act on them on the Directions page, or add them on the Steering page.")


def row(i: int, it: dict, rev: int) -> bool:
    """A saved direction acted on, on the Steering page; True when removed."""
    with st.container(border=True):
        c1, c2 = st.columns([10, 0.6], vertical_alignment="center")
        c1.markdown(f"**{md(describe(it))}** · saved direction")
        return c2.button("✕", key=f"rmdir_{rev}_{i}", help="stop acting on this direction")


def add_saved(client) -> dict | None:
    """The Steering page's tab: pick a saved direction and how to act on it; the intervention
    once added."""
    try:
        saved = client.directions()
    except Exception as e:  # noqa: BLE001  (said on the tab)
        st.caption(f"Saved directions unavailable: {md(str(e))}")
        return None
    if not saved:
        st.caption("No saved directions for this model yet (the Probes page saves them).")
        return None
    a, b, c, d = st.columns([3, 2, 1.5, 1], vertical_alignment="bottom")
    name = a.selectbox("Direction", [x.name for x in saved], key="steer_dir_name",
                       format_func=lambda n: label(next(x for x in saved if x.name == n)))  # fmt: skip
    mode = b.selectbox("Mode", list(MODES), format_func=MODES.get, key="steer_dir_mode")
    value = c.number_input("coefficient" if mode != "cap" else "cap at ±", value=4.0 if mode == "add" else 1.0,
                           key="steer_dir_value")  # fmt: skip
    if not d.button("Add direction"):
        return None
    if mode == "cap":
        return intervention(name, mode, None, lo=-abs(value), hi=abs(value))
    return intervention(name, mode, "all" if mode == "ablate" else None, coeff=value)


def saved_vectors(client, acting: list[dict]) -> dict | None:
    """The saved directions the Steering page acts on, by name, for its KL figure's snippet
    (``GET /directions/{name}``); None when one cannot be read (the figure then has no snippet)."""
    try:
        return {it["name"]: client.direction(it["name"]) for it in acting}
    except Exception:  # noqa: BLE001  (a missing snippet, not a failed page)
        return None


def together(it: dict, others: list[str]) -> list[dict]:
    """The interventions ablating `others` whole at the same layers as ablation `it`: with it
    (when it too is whole) the engine removes their span together (``interventions.span``),
    e.g. a probe sweep's per-layer directions of one concept."""
    return [
        intervention(n, "ablate", it.get("layers"), 1.0, None, None, None,
                     it.get("allow_other_model", False))
        for n in others if n != it["name"]
    ]  # fmt: skip
