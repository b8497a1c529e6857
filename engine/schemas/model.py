"""Which model is loaded and what it can do."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from engine.schemas.common import PRIMARY, PathName, Slot
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
    max_context: int | None = Field(
        default=None,
        ge=16,
        le=1_048_576,
        description="longest prompt accepted; the engine's setting if None",
    )
    slot: Slot = Field(
        default=PRIMARY, description="'a' replaces the primary model; another slot keeps it"
    )


class MemoryInfo(BaseModel):
    """A model's memory estimate (engine/memory.py), in bytes."""

    params: int
    weights_bytes: int
    buffers_bytes: int = Field(description="attention masks and rotary tables at the cap")
    activations_bytes: int = Field(description="one run_with_cache of a prompt as long as the cap")
    load_peak_bytes: int
    needed_bytes: int
    available_bytes: int
    device: str
    n_ctx: int
    fits: bool
    slow_on_cpu: bool
    reserved_bytes: int = Field(
        default=0, description="held by the models already loaded (available_bytes is net of it)"
    )


class LoadEstimate(BaseModel):
    """What loading a model would take, from its config alone."""

    name: str
    path: str = Field(description="'hooked' or 'bridge'")
    why_bridge: str = ""
    n_ctx: int = Field(description="the context cap it would get")
    model_max_context: int | None
    memory: MemoryInfo
    summary: str
    notes: list[str]


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
    path: str = Field(
        default="hooked", description="'hooked' (HookedTransformer) or 'bridge' (TransformerBridge)"
    )
    model_max_context: int | None = Field(
        default=None, description="the checkpoint's own context; n_ctx is the engine's cap"
    )
    memory: MemoryInfo | None = Field(default=None, description="the estimate it was loaded on")
    notes: list[str] = Field(default_factory=list, description="e.g. slow on CPU, context capped")


class Capability(BaseModel):
    available: bool
    reason: str = ""


class Capabilities(BaseModel):
    model: ModelInfo | None
    features: dict[str, Capability]
    analyses: list[str]
    jobs: list[str]
    slot: str = Field(default=PRIMARY, description="the slot these capabilities are of")
    slots: list[str] = Field(default_factory=list, description="every slot holding a model")


class SlotInfo(BaseModel):
    """One loaded model and the slot it is in (``GET /models``)."""

    slot: str
    model: ModelInfo


class Health(BaseModel):
    status: str
    engine_id: str = Field(description="changes whenever the engine process restarts")
    pid: int
    model: str | None
    uptime_s: float
    busy: bool = Field(description="a job is running")
    job: JobInfo | None = Field(default=None, description="the running job: kind, progress")
    waiting: int = Field(default=0, description="pieces of work queued for the model thread")
