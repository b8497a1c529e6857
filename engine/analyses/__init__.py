"""Registry of analyses: one pure function each, from a prompt run and params to a result.

An analysis declares its name, a version (bumped whenever its output changes, so cached
results of older code are never served), its pydantic params and result models, and a
``check`` of its params against the loaded model. Registering a module adds an API route.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from engine.loading import LoadedModel
from engine.run import PromptRun

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Analysis(Generic[P, R]):
    name: str
    version: int
    params: type[P]
    result: type[R]
    fn: Callable[[PromptRun, P], R]
    check: Callable[[LoadedModel, P], None] = lambda lm, p: None
    description: str = ""


REGISTRY: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    if analysis.name in REGISTRY:
        raise ValueError(f"analysis {analysis.name!r} registered twice")
    REGISTRY[analysis.name] = analysis
    return analysis


def load_builtin() -> dict[str, Analysis]:
    """Import the built-in analysis modules (each registers itself)."""
    from engine.analyses import (  # noqa: F401
        attention,
        attention_layer,
        dla,
        head_scores,
        latent_detail,
        latent_search,
        logit_lens,
        predictions,
        sae_latents,
    )

    return REGISTRY
