"""Acting on a direction with TransformerLens hooks: add it, ablate it, cap its projection.

The three edits are pure functions of an activation and a unit direction (``add``, ``ablate``,
``cap``); ``hooks`` turns resolved interventions into ``(hook_name, fn)`` pairs for
``model.hooks(fwd_hooks=...)``; a gate (an SAE latent, a contrastive probe or a saved direction
above a threshold, read at or before where it acts) limits an edit to the positions where it
fires. Ablating at every layer is the refusal-direction method of Arditi et al. (2024): the
direction is projected out of ``hook_resid_pre`` of every block and out of every block's
attention and MLP outputs, so nothing downstream reads or writes it; engine/orthogonalise.py
is the same ablation as a weight edit. Several directions ablated whole at the same hook
points are removed together, as the subspace they span (``span``, ``ablate_span``): e.g. a
probe sweep's per-layer directions, where the concept is held along a different direction at
each layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from engine.errors import EngineError
from engine.schemas.directions import DirectionIntervention
from engine.schemas.steering import ResolvedVector

if TYPE_CHECKING:
    from engine.loading import LoadedModel

ABLATE_AT = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")


# --- the edits ---------------------------------------------------------------------------
def add(x: Float[Tensor, "... d"], r: Float[Tensor, " d"], coeff: float) -> Float[Tensor, "... d"]:
    """x + coeff * r."""
    return x + coeff * r


def ablate(
    x: Float[Tensor, "... d"], r: Float[Tensor, " d"], coeff: float = 1.0
) -> Float[Tensor, "... d"]:
    """x minus coeff times its projection onto the unit vector r (coeff 1: none of r left)."""
    return x - coeff * (x @ r)[..., None] * r


def cap(
    x: Float[Tensor, "... d"], r: Float[Tensor, " d"], lo: float | None, hi: float | None
) -> Float[Tensor, "... d"]:
    """x with its projection onto the unit vector r clamped to [lo, hi] (activation capping)."""
    p = x @ r
    return x + (p.clamp(min=lo, max=hi) - p)[..., None] * r


def span(rs: list[Float[Tensor, " d"]]) -> Float[Tensor, "d k"]:
    """Orthonormal columns spanning the directions `rs` (QR in float64; a direction already in
    the others' span adds no column)."""
    q, r = torch.linalg.qr(torch.stack([x.double() for x in rs], 1))
    keep = r.diagonal().abs() > 1e-6 * r.diagonal().abs().max()
    return q[:, keep].to(rs[0].dtype)


def ablate_span(x: Float[Tensor, "... d"], q: Float[Tensor, "d k"]) -> Float[Tensor, "... d"]:
    """x with its component in the span of q's orthonormal columns removed: several directions
    ablated together (one after another, directions that are not orthogonal leave some of
    their span behind)."""
    return x - (x @ q) @ q.T


def residual_direction(r: Float[Tensor, " d"], centred: bool) -> Float[Tensor, " d"]:
    """The unit direction as the residual stream holds it: without its mean when the model's
    writing weights are centred (TransformerLens centres a LayerNorm model's: its residual
    stream has no component along (1, ..., 1)), else as given."""
    r = r.float()
    if centred:
        r = r - r.mean()
    if float(r.norm()) < 1e-6:
        raise EngineError(
            422, "direction_not_in_stream",
            "The direction lies along (1, ..., 1), which this model's residual stream never "
            "holds (its writing weights are centred): there is nothing to project out.",
        )  # fmt: skip
    return r / r.norm()


def centred(model) -> bool:
    """Whether TransformerLens centred this model's writing weights (LayerNorm models)."""
    return model.cfg.normalization_type in ("LN", "LNPre")


# --- where they act --------------------------------------------------------------------------
def hook_points(
    mode: str, layers: list[int] | str | None, own_hook: str, n_layers: int
) -> list[str]:
    """The hook points an intervention edits: ablate at ``ABLATE_AT`` of each layer (every
    layer by default); add and cap at the direction's own hook point by default, else at the
    same kind of hook point (``hook_resid_pre`` when its own is not a block's) of each layer."""
    if layers == "all" or (layers is None and mode == "ablate"):
        layers = list(range(n_layers))
    bad = [layer for layer in layers or [] if layer >= n_layers]
    if bad:
        raise EngineError(
            422, "bad_layer", f"This model has layers 0 to {n_layers - 1}, not {bad}."
        )
    if mode == "ablate":
        return [f"blocks.{layer}.{h}" for layer in layers for h in ABLATE_AT]
    if layers is None:
        return [own_hook]
    kind = own_hook.split(".", 2)[2] if own_hook.startswith("blocks.") else "hook_resid_pre"
    return [f"blocks.{layer}.{kind}" for layer in layers]


@dataclass
class Applied:
    """One intervention, resolved: its unit direction, where and how it edits, its gate."""

    label: str
    mode: str
    direction: Float[Tensor, " d"]
    at: list[str]
    coeff: float = 1.0
    lo: float | None = None
    hi: float | None = None
    gate: Any = None  # a saes.Dictionary or steering.Probe (``encode``, ``reads``), or None
    gate_index: int = 0
    threshold: float = 0.0
    extra: dict = field(default_factory=dict)

    def edit(self, x: Tensor, r: Tensor) -> Tensor:
        if self.mode == "add":
            return add(x, r, self.coeff)
        if self.mode == "ablate":
            return ablate(x, r, self.coeff)
        return cap(x, r, self.lo, self.hi)

    def info(self) -> ResolvedVector:
        how = f"cap to [{self.lo}, {self.hi}]" if self.mode == "cap" else self.mode
        where = self.at[0] if len(self.at) == 1 else f"{len(self.at)} hook points"
        return ResolvedVector(label=f"{self.label} ({how})", hook=where, coefficient=self.coeff,
                              norm=1.0, conditional=self.gate is not None)  # fmt: skip


def whole_ablation(a: Applied) -> bool:
    """Whether `a` removes all of its direction everywhere (ablate, coeff 1, no gate)."""
    return a.mode == "ablate" and a.coeff == 1.0 and a.gate is None


def hooks(applied: list[Applied], device: str | torch.device, dtype: torch.dtype) -> list:
    """``(hook_name, fn)`` pairs for ``model.hooks``: at each hook point first the gates read
    there (a mask of the positions where each fires), then the whole ablations made there
    together (two or more: their span projected out, ``ablate_span``), then the other edits
    made there in order."""
    names: list[str] = []
    for a in applied:
        for n in ([a.gate.reads] if a.gate is not None else []) + a.at:
            if n not in names:
                names.append(n)
    masks: dict[int, Tensor] = {}

    def make(name: str):
        gates = [a for a in applied if a.gate is not None and a.gate.reads == name]
        joint = [a for a in applied if name in a.at and whole_ablation(a)]
        q = span([a.direction for a in joint]).to(device, dtype) if len(joint) > 1 else None
        alone = [a for a in applied if name in a.at and (q is None or not whole_ablation(a))]
        edits = [(a, a.direction.to(device, dtype)) for a in alone]

        def hook(act: Tensor, hook) -> Tensor:
            for a in gates:
                masks[id(a)] = (a.gate.encode(act)[..., a.gate_index] > a.threshold)[..., None]
            if q is not None:
                act = ablate_span(act, q)
            for a, r in edits:
                new = a.edit(act, r)
                act = torch.where(masks[id(a)], new, act) if a.gate is not None else new
            return act

        return hook

    return [(n, make(n)) for n in names]


# --- from a request --------------------------------------------------------------------------
def resolve(lm: LoadedModel, items: list[DirectionIntervention], store) -> list[Applied]:
    """Each intervention with its saved direction (refused when found on another model), its
    hook points checked, its gate resolved as steering's conditions are."""
    from engine import directions, steering

    out = []
    for it in items:
        d = store.usable(it.name, it.allow_other_model)
        at = hook_points(it.mode, it.layers, d.hook, lm.n_layers)
        for h in at:
            if h not in lm.model.hook_dict:
                raise EngineError(422, "bad_hook_point", f"This model has no hook point {h!r}.")
        r = directions.tensor(d, lm.model.cfg.device)
        if it.mode != "add":  # a projection: of the residual stream as it is held
            r = residual_direction(r, centred(lm.model))
        a = Applied(it.name, it.mode, r, at, it.coeff, it.lo, it.hi)
        if it.gate is not None:
            g, index = steering._condition_source(lm, it.gate)
            first = min(at, key=steering.hook_order)
            if steering.hook_order(g.reads) > steering.hook_order(first):
                raise EngineError(
                    422, "condition_after_hook",
                    f"The gate reads {g.reads}, after {first} where {it.name!r} acts: a gate "
                    "must be read at or before where the direction acts.",
                )  # fmt: skip
            a.gate, a.gate_index, a.threshold = g, index, it.gate.threshold
        out.append(a)
    return out


def resolve_request(engine, lm: LoadedModel, req) -> tuple[list, list[Applied]]:
    """A steering request's vectors and saved directions acted on, on `lm` (any slot), with
    its direction store open first (a condition may name a saved direction). A vector of an
    SAE attached to the primary model only reads `lm`'s activations (engine/steering_models)."""
    from engine import directions, steering_models

    store = directions.for_model(lm, directions.folder(engine))
    primary = engine.require_model()
    return steering_models.resolve_on(lm, req.vectors, primary), resolve(lm, req.directions, store)
