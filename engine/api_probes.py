"""HTTP routes of probe sweeps (the sweep itself is the ``probe_sweep`` job): a finished
sweep's result again, and saving one of its fitted vectors as a named direction."""

from __future__ import annotations

from fastapi import APIRouter

from engine import probe_sweep
from engine.schemas.directions import DirectionInfo
from engine.schemas.probes import SaveDirectionRequest
from engine.service import Engine


def router(engine: Engine) -> APIRouter:
    r = APIRouter(tags=["probes"])

    @r.get("/probes/{sweep}")
    def get_sweep(sweep: str) -> dict:
        """A finished sweep's result (as the job returned it, without its vectors) and the
        parameters it ran with (the figure bundle's snippet reruns it)."""
        return {**probe_sweep.sweep_file(engine, sweep), "cached": True}

    @r.post("/probes/{sweep}/directions", response_model=DirectionInfo)
    def save_direction(sweep: str, req: SaveDirectionRequest) -> DirectionInfo:
        """Save the sweep's difference-of-means or probe vector at a hook point (and
        position) as a direction, with its provenance and held-out metrics."""
        return probe_sweep.save_direction(engine, sweep, req)

    return r
