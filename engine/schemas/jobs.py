"""Long work as jobs: status, progress, ETA and cancel."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from engine.schemas.common import Text


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.done, JobStatus.failed, JobStatus.cancelled)


class JobInfo(BaseModel):
    id: str
    kind: str
    status: JobStatus
    progress: float = Field(ge=0.0, le=1.0)
    message: str = ""
    eta_s: float | None = None
    created: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None


class JobResult(BaseModel):
    job: JobInfo
    result: Any = None


class BatchLossParams(BaseModel):
    texts: list[Text] = Field(
        min_length=1, max_length=100_000, description="texts to score, one forward each"
    )


class BatchLossResult(BaseModel):
    mean_loss: list[float]
    n_tokens: list[int]
