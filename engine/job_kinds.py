"""The kinds of long work the engine runs as jobs, by name (a registry, like analyses).

Each kind may ``check`` its parameters against the engine when the job is submitted (the
model is loaded, the prompt tokenizes, the SAE is attached, the file is readable), so bad
input is a 4xx at once rather than a failed job later; it returns the parameters to run with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel

from engine import diff_jobs, direction_sweep, latent_examples, paths, validation
from engine.errors import EngineError
from engine.graphs.schemas import GraphParams
from engine.graphs.service import run_attribution_job, transcoder_capability
from engine.jobs import JobContext
from engine.loading import is_local_model_dir
from engine.schemas.diff_latents import AdiffLensParams, LatentDiffSetParams
from engine.schemas.directions import SweepParams
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
    check: Callable[["Engine", Any], Any] | None = None


def check_load(engine: Engine, p: LoadModelRequest) -> LoadModelRequest:
    """A local directory must be a model directory inside the data directories; anything else
    must look like a hub name (whether the hub knows it is the job's to find out)."""
    local = paths.local_path(p.name, engine.settings, what="model directory")
    if local is None and is_local_model_dir(p.name):  # relative to the working directory
        local = paths.confine(str(Path(p.name).resolve()), engine.settings, what="model directory")
    if local is not None:
        if not (local / "config.json").is_file():
            raise EngineError(404, "not_a_model_dir",
                              f"{p.name!r} is not a Hugging Face model directory (no config.json).")  # fmt: skip
        return p.model_copy(update={"name": str(local)})
    if not paths.HUB_NAME.match(p.name):
        raise EngineError(422, "bad_model_name", f"{p.name[:200]!r} is not a model name.")
    return p


def _check_batch_loss(engine: Engine, p: BatchLossParams) -> BatchLossParams:
    lm = engine.require_model()
    for i, text in enumerate(p.texts):
        try:
            validation.check_prompt_text(text)
            if len(text.encode()) + 1 >= lm.n_ctx:  # else it cannot be over the context
                engine.tokenize(text)
        except EngineError as e:
            raise EngineError(e.status, e.code, f"Text {i}: {e.message}", e.detail) from None
    return p


def _check_graph(engine: Engine, p: GraphParams) -> GraphParams:
    engine.graphs._prepare(p)  # the prompt tokenizes, has a BOS, the target is a token
    ok, why = transcoder_capability(engine.require_model())
    if not ok:
        raise EngineError(409, "no_transcoders", f"No attribution graph here: {why}.")
    return p


def _load_model(engine: Engine, ctx: JobContext, p: LoadModelRequest) -> dict:
    ctx.progress(0.05, f"loading {p.name} into slot {p.slot!r}")
    info = engine.load(
        p.name, dtype=p.dtype, device=p.device, max_context=p.max_context, slot=p.slot
    )
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
    "load_model": JobKind(LoadModelRequest, _load_model, "load or switch the model", check_load),
    "batch_loss": JobKind(
        BatchLossParams, _batch_loss, "mean loss of each of many texts", _check_batch_loss
    ),
    "attribution_graph": JobKind(
        GraphParams,
        run_attribution_job,
        "circuit-tracer attribution graph, saved to disk",
        _check_graph,
    ),  # fmt: skip
    "latent_examples": JobKind(
        ExamplesJobParams,
        latent_examples.run,
        "top-activating examples of an SAE over a text file or dataset",
        latent_examples.check,
    ),  # fmt: skip
    "direction_sweep": JobKind(
        SweepParams,
        direction_sweep.run,
        "a direction's intervention over coefficients: behaviour rate and harmless KL",
        direction_sweep.check,
    ),  # fmt: skip
    "adiff_lens": JobKind(
        AdiffLensParams,
        diff_jobs.run_lens,
        "activation-difference lens of two models on neutral texts (model diffing)",
        diff_jobs.check_lens,
    ),  # fmt: skip
    "latent_diff_set": JobKind(
        LatentDiffSetParams,
        diff_jobs.run_set,
        "one SAE on two models over a text set: latents that fire more or less",
        diff_jobs.check_set,
    ),  # fmt: skip
}
