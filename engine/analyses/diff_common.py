"""What the pair analyses (diff_*.py) share: the pair's description and its shape check."""

from __future__ import annotations

from engine.errors import EngineError
from engine.pairs import RunPair
from engine.schemas.diff import TOP_CHANGES as TOP_CHANGES
from engine.schemas.diff import PairInfo


def pair_info(pair: RunPair) -> dict:
    """The ``PairInfo`` fields of `pair`, to splat into a result."""
    return PairInfo(
        kind=pair.kind,
        model_a=pair.a.lm.name,
        model_b=pair.b.lm.name,
        n_tokens=len(pair.a.token_ids),
    ).model_dump()


def require_same_shape(pair: RunPair, *fields: str) -> None:
    """A 422 when A's and B's models differ in any of the config `fields` (n_layers, ...):
    reads only the configs, so it refuses before either forward pass runs."""
    ca, cb = pair.a.lm.model.cfg, pair.b.lm.model.cfg
    differ = [f"{f} {getattr(ca, f)} vs {getattr(cb, f)}" for f in fields if getattr(ca, f) != getattr(cb, f)]  # fmt: skip
    if differ:
        raise EngineError(
            422,
            "not_comparable",
            f"{pair.a.lm.name} and {pair.b.lm.name} differ in shape ({', '.join(differ)}): "
            "their layers cannot be compared one to one.",
            {"reason": "shapes differ"},
        )
