"""Steering setups as data: to and from the URL (``steer=``), a JSON file, and the
``add_latent`` links other views make (``sae:<hook_point>:<index>`` or
``transcoder:<layer>:<index>``). Pure functions; the page holds the widgets.
"""

from __future__ import annotations

import base64
import json

from pydantic import ValidationError

from engine.schemas.steering import SteeringSetup, SteeringVector, StreamEvent

ADD_LATENT = "add_latent"  # URL param: a latent to add to the setup on load, then dropped
DEFAULT_LATENT_COEF = 4.0  # when the latent's typical activation is unknown
EXAMPLE_POSITIVE = """Once upon a time, there was a happy girl named Lily.
Once upon a time, there was a cheerful dog named Max.
Once upon a time, there was a joyful cat named Emma."""
EXAMPLE_NEGATIVE = """Once upon a time, there was a sad girl named Lily.
Once upon a time, there was a gloomy dog named Max.
Once upon a time, there was a lonely cat named Emma."""


def empty() -> dict:
    return SteeringSetup().model_dump(exclude_defaults=False)


def validate(raw: dict) -> dict:
    """A setup dict checked against the wire schema (raises ValueError with the reason)."""
    try:
        return SteeringSetup.model_validate(raw).model_dump(mode="json", exclude_none=True)
    except ValidationError as e:
        raise ValueError(f"not a steering setup: {e.errors()[0]['msg']}") from None


def to_url(setup: dict) -> str:
    """Compact, URL-safe text of a setup (base64 of its JSON)."""
    data = json.dumps(validate(setup), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def from_url(text: str | None) -> dict:
    if not text:
        return empty()
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return validate(json.loads(data))
    except (ValueError, json.JSONDecodeError):
        return empty()


def to_file(setup: dict) -> bytes:
    return json.dumps(validate(setup), indent=2).encode()


def from_file(data: bytes) -> dict:
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg}") from None
    return validate(raw)


def parse_add_latent(value: str, coefficient: float = DEFAULT_LATENT_COEF) -> dict:
    """``sae:<hook_point>:<index>`` or ``transcoder:<layer>:<index>`` as a vector dict."""
    kind, _, rest = value.partition(":")
    where, _, index = rest.rpartition(":")
    if kind not in ("sae", "transcoder") or not where or not index.isdigit():
        raise ValueError(
            f"add_latent={value!r}: expected sae:<hook_point>:<index> or transcoder:<layer>:<index>"
        )
    if kind == "sae":
        v = SteeringVector(kind="sae_latent", sae=where, index=int(index), coefficient=coefficient)
    else:
        if not where.isdigit():
            raise ValueError(f"add_latent={value!r}: a transcoder's layer is a number")
        v = SteeringVector(
            kind="transcoder_latent", layer=int(where), index=int(index), coefficient=coefficient
        )
    return v.model_dump(mode="json", exclude_none=True)


def label(v: dict) -> str:
    """A short name for a vector."""
    if v.get("label"):
        return v["label"]
    if v["kind"] == "sae_latent":
        return f"SAE {v.get('sae')} #{v.get('index')}"
    if v["kind"] == "transcoder_latent":
        return f"transcoder L{v.get('layer')} #{v.get('index')}"
    return f"contrastive ({len(v.get('positive', []))} vs {len(v.get('negative', []))} prompts)"


def steerable_hooks(n_layers: int) -> list[str]:
    return [
        f"blocks.{layer}.hook_{kind}"
        for layer in range(n_layers)
        for kind in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
    ]


def collect(events: list[StreamEvent]) -> dict:
    """Texts and KLs so far from a stream's events (what the page shows); ``end``: the
    ``done`` or ``error`` event, None while it streams."""
    done = next((e for e in events if e.type in ("done", "error")), None)
    base = "".join(e.base.text for e in events if e.base)
    steered = "".join(e.steered.text for e in events if e.steered)
    if done:  # a character the stream held back, never completed
        base, steered = base + (done.base_rest or ""), steered + (done.steered_rest or "")
    kls = [e.kl for e in events if e.type == "token"]
    return {"base": base, "steered": steered, "kl": kls, "end": done}
