"""HTTP routes of the model slots: which models are loaded, and unloading one.

Loading goes through the ``load_model`` job (its ``slot`` field; ``POST /models/estimate``
takes the same body and counts the models already loaded).
"""

from __future__ import annotations

from fastapi import APIRouter, Path

from engine.schemas.common import SLOT_PATTERN, ErrorBody
from engine.schemas.model import SlotInfo
from engine.service import Engine

ERRORS = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}


def router(engine: Engine) -> APIRouter:
    r = APIRouter(tags=["models"])

    @r.get("/models", response_model=list[SlotInfo])
    def models() -> list[SlotInfo]:
        """Every loaded model and its slot, the primary ("a") first."""
        return engine.models()

    @r.delete("/models/{slot}", response_model=list[SlotInfo], responses=ERRORS)
    def unload(slot: str = Path(pattern=SLOT_PATTERN)) -> list[SlotInfo]:
        """Unload a slot other than "a"; the models still loaded."""
        return engine.unload(slot)

    return r
