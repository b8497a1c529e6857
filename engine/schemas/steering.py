"""Steering setups and the streamed generation that compares steered with baseline text.

A *steering vector* is a direction added at a hook point with a coefficient: an SAE latent's
or a transcoder latent's decoder direction, or a *contrastive* vector (the mean activation of
one set of prompts minus another's, at the hook point). A *condition* makes it apply only at
positions where a chosen SAE latent fires above a threshold.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from engine.schemas.common import MAX_PATH, SEED_MAX, Name, PromptRequest, Slot, Text
from engine.schemas.conditions import Condition
from engine.schemas.directions import DirectionIntervention
from engine.schemas.saes import DictionaryRef

__all__ = ["Condition", "DirectionIntervention"]  # re-exported: where steering requests use them


class VectorKind(StrEnum):
    sae_latent = "sae_latent"
    transcoder_latent = "transcoder_latent"
    contrastive = "contrastive"


class SteeringVector(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: VectorKind
    coefficient: float = Field(default=0.0, ge=-1e4, le=1e4)
    hook: Name | None = Field(
        default=None, description="hook point it is added at; None: where its decoder writes"
    )
    sae: str | None = Field(default=None, max_length=MAX_PATH, description="sae_latent: the SAE id")
    layer: int | None = Field(
        default=None, ge=0, le=10_000, description="transcoder_latent: its layer"
    )
    index: int | None = Field(default=None, ge=0, le=2**31, description="the latent")
    positive: list[Text] = Field(default_factory=list, max_length=64)
    negative: list[Text] = Field(default_factory=list, max_length=64)
    condition: Condition | None = None
    label: Name = ""


class SteeringSetup(BaseModel):
    """What a file or a URL carries: the vectors and their coefficients and hook points, and
    the saved directions acted on (engine/schemas/directions.py)."""

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    vectors: list[SteeringVector] = Field(default_factory=list, max_length=16)
    directions: list[DirectionIntervention] = Field(default_factory=list, max_length=16)


class SteerRequest(PromptRequest):
    vectors: list[SteeringVector] = Field(default_factory=list, max_length=16)
    directions: list[DirectionIntervention] = Field(default_factory=list, max_length=16)
    max_new_tokens: int = Field(default=30, ge=1, le=256)
    temperature: float = Field(default=0.8, ge=0.0, le=5.0, description="0 = greedy")
    top_k: int | None = Field(default=None, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0, le=SEED_MAX, description="0 to 2**32 - 1")
    stop_at_eos: bool = True
    # issue 14: side-by-side generation. With model_b, the stream's ``base`` is slot `model`'s
    # continuation and ``steered`` slot `model_b`'s (same seed and sampling, the vectors on
    # both), and ``kl`` is KL(A || B) of the two models' next tokens along A's text.
    model_b: Slot | None = Field(default=None, description="generate beside this slot's model")


class ResolvedVector(BaseModel):
    label: str
    hook: str
    coefficient: float
    norm: float = Field(description="norm of the direction before the coefficient")
    conditional: bool
    dictionary: DictionaryRef | None = Field(
        default=None, description="where a latent vector's decoder row comes from"
    )
    gate: DictionaryRef | None = Field(
        default=None, description="the SAE a condition reads (None for a probe or no condition)"
    )


class StreamToken(BaseModel):
    id: int
    text: str


class StreamEvent(BaseModel):
    """One NDJSON line: ``start``, then one ``token`` per step, then ``done`` (or ``error``)."""

    type: str
    step: int | None = None
    base: StreamToken | None = None
    steered: StreamToken | None = None
    kl: float | None = Field(
        default=None, description="KL(steered || base) of this step's next token"
    )
    vectors: list[ResolvedVector] | None = None
    prompt_tokens: int | None = None
    seconds: float | None = None
    tokens_per_s: float | None = None
    base_rest: str | None = Field(
        default=None, description="on done: text held back at the end (an unfinished character)"
    )
    steered_rest: str | None = None
    message: str | None = None
