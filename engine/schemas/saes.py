"""Parameters and results of the SAE latent views (and transcoder latents in the same panel).

Vocabulary: a *dictionary* is an SAE or a per-layer transcoder; one of its units is a
*latent*, named by ``source`` (``sae`` / ``transcoder``), the SAE's id (its hook point for
the bundled ones) or the transcoder's layer, and its ``index``. A dictionary *reads* its
input hook and *writes* its decoder directions at its output hook (the same hook for an SAE).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.schemas.common import MAX_NAME, MAX_PATH, Name, PathName, TokenInfo
from engine.schemas.views import TokenOut


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatentSource(StrEnum):
    sae = "sae"
    transcoder = "transcoder"


class SaeInfo(BaseModel):
    id: str = Field(description="how requests name this SAE (its hook point when bundled)")
    origin: str = Field(description="'bundled', 'saelens' (release + id) or 'local' (a directory)")
    hook_name: str
    d_in: int
    d_sae: int
    architecture: str
    release: str | None = None
    sae_id: str | None = None
    path: str | None = None
    neuronpedia_id: str | None = None
    has_examples: bool = Field(description="shipped top-activating examples and labels")
    example_sets: list[str] = Field(default_factory=list, description="computed example sets")


class DictionaryRef(BaseModel):
    """Where a dictionary's weights are stored, for code that rebuilds its directions on its own
    (a figure bundle's snippet): a SAELens directory or release + id, or a transcoder's file."""

    kind: LatentSource
    path: str | None = Field(
        default=None, description="SAELens directory, or the transcoder's safetensors file"
    )
    release: str | None = None
    sae_id: str | None = None


class AttachSaeRequest(BaseModel):
    release: str | None = Field(
        default=None, max_length=MAX_PATH, description="SAELens release, with sae_id"
    )
    sae_id: str | None = Field(default=None, max_length=MAX_PATH)
    path: str | None = Field(
        default=None, max_length=MAX_PATH, description="a local SAELens directory instead"
    )


class LatentRef(BaseModel):
    index: int
    act: float


class StrongLatent(BaseModel):
    index: int
    max_act: float
    max_pos: int
    n_active: int = Field(description="content positions where it fires")
    label: str
    frequency: float | None = Field(description="share of dataset tokens it fires on")


class SaeLatentsParams(Params):
    sae: PathName
    top_k: int = Field(default=5, ge=1, le=20, description="latents shown per token")
    latent: int | None = Field(default=None, ge=0, description="colour tokens by this latent")
    n_strongest: int = Field(default=20, ge=1, le=200)


class SaeLatentsResult(BaseModel):
    sae: SaeInfo
    tokens: list[TokenInfo]
    top: list[list[LatentRef]] = Field(description="[pos][k]: strongest latents at pos")
    l0: list[int] = Field(description="[pos]: how many latents fire")
    latent: int | None
    latent_acts: list[float] | None = Field(description="[pos]: the chosen latent")
    strongest: list[StrongLatent] = Field(description="by max activation over content tokens")


class Example(BaseModel):
    tokens: list[str]
    acts: list[float]
    max_pos: int


class Histogram(BaseModel):
    edges: list[float] = Field(description="bin edges (log-spaced)")
    counts: list[int]
    over: str = Field(description="what was counted")


class NeuronpediaRef(BaseModel):
    model_id: str
    source: str
    url: str


class LatentDetailParams(Params):
    source: LatentSource = LatentSource.sae
    sae: str | None = Field(
        default=None, max_length=MAX_PATH, description="the SAE id, for source='sae'"
    )
    layer: int | None = Field(default=None, ge=0, description="for source='transcoder'")
    index: int = Field(ge=0)
    examples: str | None = Field(
        default=None, max_length=MAX_PATH, description="a computed example set; None=shipped"
    )
    n_logits: int = Field(default=10, ge=1, le=50)


class LatentDetailResult(BaseModel):
    source: LatentSource
    key: str = Field(description="'sae:<id>' or 'transcoder:<layer>'")
    index: int
    reads: str = Field(description="input hook point")
    writes: str = Field(description="hook point its decoder direction is added to")
    d_latent: int
    label: str | None
    label_origin: str = Field(description="'shipped', 'computed' or 'none'")
    tokens: list[TokenInfo]
    acts: list[float] = Field(description="[pos]: its activation on this prompt")
    max_act: float | None = Field(description="max over the example set")
    frequency: float | None
    examples: list[Example]
    examples_over: str
    histogram: Histogram | None
    top_logits: list[TokenOut]
    top_values: list[float]
    bottom_logits: list[TokenOut]
    bottom_values: list[float]
    decoder_norm: float
    neuronpedia: NeuronpediaRef | None


class SearchBy(StrEnum):
    label = "label"
    token = "token"


class LatentSearchParams(Params):
    sae: PathName
    query: str = Field(min_length=1, max_length=MAX_NAME)
    by: SearchBy = SearchBy.label
    examples: str | None = Field(default=None, max_length=MAX_PATH)
    limit: int = Field(default=20, ge=1, le=200)


class SearchHit(BaseModel):
    index: int
    label: str
    score: float = Field(description="label: share of query words; token: summed activation")
    max_act: float | None


class LatentSearchResult(BaseModel):
    by: SearchBy
    query: str
    token: TokenOut | None
    over: str
    hits: list[SearchHit]


class ExamplesJobParams(BaseModel):
    """The texts to run an SAE over: a text file, or a dataset (hub name or local)."""

    sae: PathName
    path: str | None = Field(
        default=None,
        max_length=MAX_PATH,
        description="a text file: one text per line, or .jsonl with a 'text' field",
    )
    dataset: str | None = Field(
        default=None,
        max_length=MAX_PATH,
        description="a Hugging Face dataset name, a directory written by save_to_disk, or a "
        "local data file/directory (parquet, csv, json/jsonl, txt)",
    )
    split: Name = Field(default="train", min_length=1)
    column: Name = Field(default="text", min_length=1)
    max_texts: int = Field(default=2000, ge=1, le=1_000_000)
    top_k: int = Field(default=10, ge=1, le=50)

    @model_validator(mode="after")
    def _one_source(self) -> ExamplesJobParams:
        if bool(self.path) == bool(self.dataset):
            raise ValueError("name exactly one source: a text file (path) or a dataset")
        return self


class NeuronpediaLabel(BaseModel):
    available: bool
    text: str | None = None
    url: str | None = None
    message: str = ""
    cached: bool = False
