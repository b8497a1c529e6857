"""HTTP routes of live steering: a steered and a baseline continuation streamed as NDJSON."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from engine import steering_stream
from engine.schemas.steering import SteerRequest
from engine.service import Engine


def router(engine: Engine) -> APIRouter:
    r = APIRouter(tags=["steering"])

    @r.post("/steering/generate")
    def generate(req: SteerRequest) -> StreamingResponse:
        """One JSON object per line: ``start``, a ``token`` per step, then ``done``/``error``."""
        lines = steering_stream.events(engine, req)  # bad requests fail here, as 4xx JSON
        return StreamingResponse(lines, media_type="application/x-ndjson")

    return r
