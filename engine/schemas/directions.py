"""Directions as saved objects, and what acting on one asks for.

A *direction* is a unit vector in the residual stream (or another d_model activation) of one
model, read at a TransformerLens hook point, with where it came from (``provenance``) and how
good it was (``metrics``). It is saved with the fingerprint of the model it was found on, so it
is not silently used on another one (engine/directions.py).

A ``DirectionIntervention`` acts on a saved direction while generating: ``add`` it with a
coefficient, ``ablate`` it (project it out of the residual stream), or ``cap`` its projection
to a range; optionally only where a condition (an SAE latent, a probe, a saved direction)
fires (engine/interventions.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.schemas.common import Finite, Name, Text
from engine.schemas.conditions import Condition

DIRECTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
DirectionName = Annotated[str, Field(pattern=DIRECTION_NAME, max_length=80)]
MAX_D_MODEL = 1 << 16
METHODS = ("diff_of_means", "logistic_probe", "sae_latent", "contrastive", "file")


class Direction(BaseModel):
    """A saved direction. ``vector`` is unit-normalised on save; ``norm`` keeps the norm of the
    vector as found (a difference of means' length, a probe's weight norm)."""

    model_config = ConfigDict(extra="forbid")
    name: DirectionName
    hook: Name = Field(description="TransformerLens hook point, e.g. blocks.3.hook_resid_pre")
    vector: list[Finite] = Field(min_length=1, max_length=MAX_D_MODEL)
    norm: Finite = Field(default=0.0, ge=0, description="0 on save: the vector's own norm")
    model_fingerprint: str = Field(
        default="", max_length=128, description="of the model it was found on; '' on save: this one"
    )
    model_shape: str = Field(default="", max_length=256, description="architecture and sizes")
    model_name: str = Field(default="", max_length=1024)
    provenance: dict[str, Any] = Field(
        default_factory=dict,
        description="how it was found: method (one of METHODS), inputs hash, prompt sets, "
        "position rule, created (unix time)",
    )
    metrics: dict[str, Finite] = Field(default_factory=dict, description="held-out accuracy, ...")


Compatibility = Literal["same_model", "same_shape", "other_model"]


class DirectionInfo(BaseModel):
    """A saved direction without its vector (what lists show)."""

    name: str
    hook: str
    d_model: int
    norm: float
    method: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    model_name: str = ""
    model_fingerprint: str
    compatibility: Compatibility = Field(
        description="same_model: found on the loaded model; same_shape: another model of the "
        "same architecture and sizes (usable when asked explicitly); other_model: not usable"
    )
    created: float | None = None


class DirectionIntervention(BaseModel):
    """Act on a saved direction while generating.

    ``add``: add ``coeff`` times the unit direction at the layers' hook points (None: at the
    direction's own hook point). ``ablate``: project ``coeff`` times its projection out of the
    residual stream (1 = all of it; Arditi et al.: ``hook_resid_pre``, ``hook_attn_out`` and
    ``hook_mlp_out`` of each layer; None or "all": every layer). ``cap``: clamp the projection
    onto the unit direction to [lo, hi] (None: that side open) at the layers' ``hook_resid_pre``
    (None: the direction's own hook point). ``gate``: only at positions where it holds.
    """

    model_config = ConfigDict(extra="forbid")
    name: DirectionName
    mode: Literal["add", "ablate", "cap"] = "add"
    layers: list[Annotated[int, Field(ge=0, le=10_000)]] | Literal["all"] | None = Field(
        default=None, max_length=1024
    )
    coeff: Finite = Field(default=1.0, ge=-1e4, le=1e4)
    lo: Finite | None = None
    hi: Finite | None = None
    gate: Condition | None = None
    allow_other_model: bool = Field(
        default=False, description="use a direction found on another model of the same shape"
    )

    @model_validator(mode="after")
    def _range(self) -> DirectionIntervention:
        if self.mode == "cap" and self.lo is None and self.hi is None:
            raise ValueError("a cap needs lo or hi")
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise ValueError("lo must not exceed hi")
        return self


class Classifier(BaseModel):
    """A behaviour on generated text: any of ``keywords`` in it (case-insensitive), or a saved
    ``probe`` direction whose mean projection over the text's generated tokens (read by the
    unmodified model at the direction's hook point) exceeds ``threshold``."""

    model_config = ConfigDict(extra="forbid")
    keywords: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=64
    )
    probe: DirectionName | None = None
    threshold: Finite = 0.0

    @model_validator(mode="after")
    def _one(self) -> Classifier:
        if bool(self.keywords) == (self.probe is not None):
            raise ValueError("give keywords or a probe direction (one of them)")
        return self


class SweepParams(BaseModel):
    """A measurement sweep of one intervention over coefficients (``coeff``; for ``cap``, the
    upper end ``hi``)."""

    model_config = ConfigDict(extra="forbid")
    intervention: DirectionIntervention
    values: list[Finite] = Field(min_length=1, max_length=16)
    prompts: list[Text] = Field(min_length=1, max_length=256, description="held-out prompts")
    harmless: list[Text] = Field(min_length=1, max_length=256, description="for the KL")
    classifier: Classifier
    max_new_tokens: int = Field(default=10, ge=1, le=64)
    chat: bool = Field(default=False, description="wrap each prompt in the chat template")


class SweepRow(BaseModel):
    value: float
    rate: float = Field(description="share of the prompts whose greedy continuation is classed so")
    kl: float = Field(
        description="mean KL(clean || intervened) of the next-token distributions at every "
        "position of the harmless prompts (BOS's prediction included), nats"
    )
    examples: list[str] = Field(default_factory=list, description="the first few continuations")


class SweepResult(BaseModel):
    direction: str
    mode: str
    baseline_rate: float = Field(description="the rate with no intervention")
    rows: list[SweepRow]
    kl_positions: str = "prompt"
    hook_points: list[str] = Field(default_factory=list, description="where it acted")


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    direction: DirectionName
    out: DirectionName | None = Field(
        default=None, description="folder name under <data dir>/exports (default: model-name)"
    )
    allow_other_model: bool = False
    also: list[DirectionName] = Field(
        default=[], max_length=64,
        description="more saved directions projected out together with `direction` (their span)",
    )  # fmt: skip


class ExportResult(BaseModel):
    path: str
    files: list[str]
    changed: list[str] = Field(description="the weights orthogonalised")
