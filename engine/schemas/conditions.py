"""Where a steering vector or a saved direction acts: only at positions where a condition holds
(an SAE latent, a contrastive probe or a saved direction above a threshold)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.schemas.common import MAX_PATH, Finite, Name, Text


class Condition(BaseModel):
    """Where a vector applies: an SAE latent above a threshold, or (with ``probe_hook``) a
    probe direction, the unit mean difference of two prompt sets at that hook, whose
    projection exceeds the threshold."""

    model_config = ConfigDict(extra="forbid")
    sae: str | None = Field(
        default=None, max_length=MAX_PATH, description="the SAE whose latent gates the vector"
    )
    index: int = Field(default=0, ge=0, le=2**31)
    threshold: Finite = Field(default=0.0, description="apply where the value exceeds it")
    probe_hook: Name | None = Field(default=None, description="a probe direction read here")
    positive: list[Text] = Field(default_factory=list, max_length=64)
    negative: list[Text] = Field(default_factory=list, max_length=64)
    direction: Name | None = Field(
        default=None, description="a saved direction (engine/directions.py): its projection, "
        "read at its own hook point, exceeds the threshold"
    )  # fmt: skip
