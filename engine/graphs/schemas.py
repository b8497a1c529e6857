"""Wire types of the graph endpoints and the attribution job."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from engine.schemas.common import MAX_NAME
from engine.schemas.views import TargetRef

NodeId = Annotated[str, Field(max_length=MAX_NAME)]

# TransformerLens official name -> circuit-tracer transcoder set name (kept here, free of torch,
# so the app's figure bundles can name the set too)
PUBLISHED = {"google/gemma-2-2b": "gemma", "meta-llama/Llama-3.2-1B": "llama"}


class GraphKind(StrEnum):
    transcoder = "transcoder"  # circuit-tracer attribution graph over transcoder latents
    component = "component"  # heads and MLPs, from attribution patching


class GraphParams(BaseModel):
    """An attribution graph request (circuit-tracer ``attribute`` + ``create_graph_files``)."""

    prompt: str
    max_feature_nodes: int = Field(default=256, ge=1, le=100_000, description="latent node budget")
    max_n_logits: int = Field(default=5, ge=1, le=50)
    desired_logit_prob: float = Field(default=0.95, gt=0.0, le=1.0)
    batch_size: int = Field(default=64, ge=1, le=4096, description="source nodes per backward")
    node_threshold: float = Field(default=0.8, gt=0.0, le=1.0, description="pruning, cumulative")
    edge_threshold: float = Field(default=0.98, gt=0.0, le=1.0, description="pruning, cumulative")
    target: TargetRef | None = Field(default=None, description="attribute this token's logit only")


class GraphCost(BaseModel):
    """What a graph will cost, measured before the job starts."""

    n_tokens: int
    active_latents: int = Field(description="latents active on the prompt (all layers)")
    latent_nodes: int = Field(description="latent nodes that will be attributed (the budget)")
    total_nodes: int
    batches: int = Field(description="backward passes")
    memory_bytes: int
    available_bytes: int
    device: str
    fits: bool
    reason: str = ""


class GraphInfo(BaseModel):
    """One saved graph: what it was made from, and its size after pruning."""

    slug: str
    kind: GraphKind
    model: str
    fingerprint: str
    prompt: str
    token_ids: list[int]
    params: dict
    n_nodes: int
    n_links: int
    seconds: float
    created: float
    qparams_version: int = Field(default=0, description="bumped by each qParams edit")


class QParamsUpdate(BaseModel):
    """The viewer state circuit-tracer keeps in a graph file: pinned nodes and supernodes."""

    pinnedIds: list[NodeId] = Field(default_factory=list, max_length=10_000)
    supernodes: list[Annotated[list[NodeId], Field(max_length=10_000)]] = Field(
        default_factory=list, max_length=1_000, description="each: [name, node_id, node_id, ...]"
    )
    clickedId: NodeId = ""
    version: int | None = Field(
        default=None,
        ge=0,
        description="the qParams version this edit was made on (from GET .../qparams); a "
        "stale one answers 409. None: overwrite whatever is there",
    )


class ComponentGraphParams(BaseModel):
    """Attribution patching from a corrupted prompt to a clean one (same token count)."""

    prompt: str
    corrupted: str
    target: TargetRef = Field(description="token whose logit difference is explained")
    baseline: TargetRef | None = Field(default=None, description="minus this token's logit")
    edge_threshold: float = Field(
        default=0.9, gt=0.0, le=1.0, description="keep edges to this share"
    )
