"""HTTP routes of saved directions (engine/directions.py) and of exporting a model with one
projected out of its weights (engine/orthogonalise.py). Measuring an intervention is the
``direction_sweep`` job; acting on one while generating is part of ``/steering/generate``."""

from __future__ import annotations

from fastapi import APIRouter, Query

from engine import directions
from engine.schemas.directions import Direction, DirectionInfo, ExportRequest, ExportResult
from engine.service import Engine


def router(engine: Engine) -> APIRouter:
    r = APIRouter(tags=["directions"])

    def store() -> directions.DirectionStore:
        opened = engine.require_model().session.directions  # files only: no model thread
        return opened if opened is not None else engine.compute(directions.store, engine)

    @r.get("/directions", response_model=list[DirectionInfo])
    def list_directions(all_models: bool = Query(default=False)) -> list[DirectionInfo]:
        """This model's saved directions (all_models: every one, each saying if usable here)."""
        return store().list(all_models)

    @r.post("/directions", response_model=DirectionInfo)
    def save(d: Direction) -> DirectionInfo:
        """Save (or replace) a direction; without a fingerprint it was found on this model."""
        return store().save(d)

    @r.get("/directions/{name}", response_model=Direction)
    def get(name: str) -> Direction:
        return store().get(name)

    @r.delete("/directions/{name}")
    def delete(name: str) -> dict:
        return store().delete(name)

    @r.post("/directions/export", response_model=ExportResult)
    def export(req: ExportRequest) -> ExportResult:
        """The loaded model with the direction projected out of every weight that writes to
        the residual stream, as a Hugging Face directory under ``<data dir>/exports``."""
        from engine import orthogonalise

        return orthogonalise.export(engine, req)

    return r
