"""What an analysis is: a name, a version, its params and result models, one function, and
the metadata the engine derives its routes and capabilities from (engine/analyses/registry.py
lists them all)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from engine.loading import LoadedModel
from engine.run import PromptRun

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
Availability = Callable[[LoadedModel | None], tuple[bool, str]]


def model_loaded(lm: LoadedModel | None) -> tuple[bool, str]:
    """Available whenever a model is loaded: what needs nothing but the model."""
    return (True, "") if lm is not None else (False, "no model loaded")


@dataclass(frozen=True)
class Analysis(Generic[P, R]):
    """`fn` maps a prompt run and params to a result; `check` refuses params that do not fit
    the loaded model before any work (a 4xx); `version` is bumped whenever the output
    changes, so cached results of older code are never served. `feature` is the capability
    it belongs to (``GET /capabilities``), available when `available` says so: several
    analyses of one view share a feature and its availability."""

    name: str
    version: int
    params: type[P]
    result: type[R]
    fn: Callable[[PromptRun, P], R]
    feature: str
    check: Callable[[LoadedModel, P], None] = lambda lm, p: None
    available: Availability = model_loaded
    description: str = ""
    # a pair analysis (engine/pairs.py): `fn` maps a ``RunPair`` (two runs: two models on
    # one prompt, or one model on two prompts) and params to a result
    pair: bool = False
    # a pair analysis's check of side B's model (``model_b``), given side A's and B's: `check`
    # is side A's; None: `check` on side B too. For what only side A has (e.g. an SAE).
    check_b: Callable[[LoadedModel, LoadedModel, P], None] | None = None
    # a pair analysis that reads side B only through its logits and ``PromptRun.act`` of
    # residual streams: B's run, when its forward pass has not run yet, is a light run
    # (``PromptRun.run_light``: logits and residual streams, no full activation cache)
    light_b: bool = False
