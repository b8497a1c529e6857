"""HTTP routes of the SAE views: which SAEs are attached, attach one, a latent's Neuronpedia label.

The per-prompt analyses (``sae_latents``, ``latent_detail``, ``latent_search``) go through
``/analysis/{name}``; top-activating examples over a text file are the ``latent_examples`` job.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Query

from engine import neuronpedia_labels, paths, saes
from engine.errors import EngineError
from engine.schemas.saes import AttachSaeRequest, NeuronpediaLabel, SaeInfo
from engine.service import Engine


def router(engine: Engine) -> APIRouter:
    r = APIRouter(tags=["saes"])

    @r.get("/saes", response_model=list[SaeInfo])
    def list_saes() -> list[SaeInfo]:
        return saes.for_model(engine.require_model()).infos()

    @r.post("/saes", response_model=SaeInfo)
    def attach(req: AttachSaeRequest) -> SaeInfo:
        reg = saes.for_model(engine.require_model())
        if req.path:  # only inside the engine's data directories (engine/paths.py)
            where = paths.confine(req.path, engine.settings, what="SAE directory")
            return reg.attach_local(str(where))
        if req.release and req.sae_id:
            return reg.attach_pretrained(req.release, req.sae_id)
        raise EngineError(
            422, "sae_ref_required", "Give a SAELens release and sae_id, or a local directory."
        )

    @r.get("/saes/latent/neuronpedia", response_model=NeuronpediaLabel)
    def neuronpedia(
        sae: str = Query(max_length=1024), index: int = Query(ge=0, le=2**31)
    ) -> NeuronpediaLabel:
        lm = engine.require_model()
        d = saes.for_model(lm).get(sae)
        saes.check_index(d, index)
        ref = d.neuronpedia(index)
        if ref is None:
            raise EngineError(
                404,
                "no_neuronpedia_page",
                f"{d.key} has no Neuronpedia id (SAELens gives one only for SAEs Neuronpedia "
                "hosts): showing the shipped label.",
            )
        cache_dir = Path(engine.settings.cache_dir) / "neuronpedia"
        return neuronpedia_labels.fetch_label(ref.model_id, ref.source, index, cache_dir=cache_dir)

    return r
