"""The kinds of long work the engine runs as jobs, by name (a registry, like analyses)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel

from engine import latent_examples
from engine.graphs.schemas import GraphParams
from engine.graphs.service import run_attribution_job
from engine.jobs import JobContext
from engine.schemas.jobs import BatchLossParams, BatchLossResult
from engine.schemas.model import LoadModelRequest
from engine.schemas.saes import ExamplesJobParams

if TYPE_CHECKING:
    from engine.service import Engine


@dataclass(frozen=True)
class JobKind:
    params: type[BaseModel]
    run: Callable[["Engine", JobContext, Any], Any]
    description: str


def _load_model(engine: Engine, ctx: JobContext, p: LoadModelRequest) -> dict:
    ctx.progress(0.05, f"loading {p.name}")
    info = engine.load(p.name, dtype=p.dtype, device=p.device, max_context=p.max_context)
    return info.model_dump()


@torch.inference_mode()
def _loss(lm, ids: list[int]) -> torch.Tensor:
    return lm.model(torch.tensor([ids], device=lm.device), return_type="loss")


def _batch_loss(engine: Engine, ctx: JobContext, p: BatchLossParams) -> dict:
    """Mean next-token loss of each text; one text at a time on the model thread."""
    lm = engine.require_model()
    means, counts = [], []
    for i, text in enumerate(p.texts):
        ctx.progress(i / len(p.texts), f"text {i + 1} of {len(p.texts)}")
        ids, _ = engine.tokenize(text)
        loss = engine.compute(_loss, lm, ids)
        means.append(float(loss))
        counts.append(len(ids) - 1)
    return BatchLossResult(mean_loss=means, n_tokens=counts).model_dump()


JOB_KINDS: dict[str, JobKind] = {
    "load_model": JobKind(LoadModelRequest, _load_model, "load or switch the model"),
    "batch_loss": JobKind(BatchLossParams, _batch_loss, "mean loss of each of many texts"),
    "attribution_graph": JobKind(
        GraphParams, run_attribution_job, "circuit-tracer attribution graph, saved to disk"
    ),
    "latent_examples": JobKind(
        ExamplesJobParams, latent_examples.run, "top-activating examples of an SAE over a text file"
    ),
}
