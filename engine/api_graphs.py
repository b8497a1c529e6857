"""HTTP routes for attribution graphs: cost, saved graphs, qParams, component graphs.

Graphs are computed by the ``attribution_graph`` job (``POST /jobs/attribution_graph``, with
progress, ETA and cancel); these routes price a request before it runs, wait for a job
without polling, and manage the graphs saved on disk. ``GET /graphs/{slug}`` answers circuit-tracer's graph JSON unchanged.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from engine import api_jobs
from engine.graphs.schemas import (
    ComponentGraphParams,
    GraphCost,
    GraphInfo,
    GraphParams,
    QParamsUpdate,
)
from engine.graphs.service import graph_service
from engine.schemas.jobs import JobResult
from engine.service import Engine

ERRORS = {404: {}, 409: {}, 413: {}, 422: {}}


def graph_router(engine: Engine) -> APIRouter:
    router = APIRouter(prefix="/graphs", tags=["graphs"], responses=ERRORS)

    def svc():
        return graph_service(engine)

    @router.post("/cost", response_model=GraphCost)
    def cost(p: GraphParams) -> GraphCost:
        return svc().cost(p)

    @router.get("", response_model=list[GraphInfo])
    def list_graphs(all_models: bool = False) -> list[GraphInfo]:
        lm = engine.lm
        fingerprint = None if all_models or lm is None else lm.fingerprint
        return svc().store.list(fingerprint)

    @router.post("/components", response_model=GraphInfo)
    def component_graph(p: ComponentGraphParams) -> GraphInfo:
        return svc().component_graph(p)

    @router.get("/jobs/{job_id}/wait", response_model=JobResult, deprecated=True)
    async def wait_job(job_id: str, timeout_s: float = api_jobs.TIMEOUT) -> JobResult:
        """The old name of ``GET /jobs/{job_id}/wait`` (engine/api_jobs.py)."""
        return await api_jobs.wait_for(engine.jobs.get(job_id), timeout_s)

    @router.get("/{slug}/info", response_model=GraphInfo)
    def info(slug: str) -> GraphInfo:
        return svc().store.info(slug)

    @router.get("/{slug}")
    def graph(slug: str) -> Response:
        return Response(svc().store.graph_bytes(slug), media_type="application/json")

    @router.get("/{slug}/qparams")
    def get_qparams(slug: str) -> dict:
        """The graph file's qParams and their ``version`` (send it back with an edit)."""
        return svc().store.qparams(slug)

    @router.put("/{slug}/qparams")
    def qparams(slug: str, q: QParamsUpdate) -> dict:
        """Replace the qParams; with ``version``, only if nobody changed them since (else 409
        with the saved ones in ``detail``); answers the new qParams and ``version``."""
        return svc().store.set_qparams(slug, q)

    @router.delete("/{slug}")
    def delete(slug: str) -> dict:
        svc().store.delete(slug)
        return {"deleted": slug}

    return router
