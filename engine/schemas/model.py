"""Which model is loaded and what it can do."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from engine.schemas.common import PathName
from engine.schemas.jobs import JobInfo


class LoadModelRequest(BaseModel):
    name: PathName = Field(
        description="a TransformerLens model name or a local Hugging Face directory"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str | None = Field(
        default=None,
        pattern=r"^(cpu|mps|cuda(:[0-9]{1,2})?)$",
        description="cuda / mps / cpu; best available if None",
    )


class ModelInfo(BaseModel):
    name: str
    source: str
    fingerprint: str
    device: str
    dtype: str
    n_layers: int
    n_heads: int
    d_model: int
    d_vocab: int
    n_ctx: int
    load_seconds: float
    ref: str | None = Field(
        default=None, description="what loads it again: its local directory, or its hub name"
    )


class Capability(BaseModel):
    available: bool
    reason: str = ""


class Capabilities(BaseModel):
    model: ModelInfo | None
    features: dict[str, Capability]
    analyses: list[str]
    jobs: list[str]


class Health(BaseModel):
    status: str
    engine_id: str = Field(description="changes whenever the engine process restarts")
    pid: int
    model: str | None
    uptime_s: float
    busy: bool = Field(description="a job is running")
    job: JobInfo | None = Field(default=None, description="the running job: kind, progress")
    waiting: int = Field(default=0, description="pieces of work queued for the model thread")
