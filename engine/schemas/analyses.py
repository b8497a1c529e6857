"""Parameters and results of the analyses (engine/analyses/), one section per analysis
module, torch-free so that the app and the client import them without the engine.

Vocabulary: ``pos`` token position, ``layer`` block index, ``head`` attention head, ``lens``
a map from a residual stream to token logits; a *target* is one vocabulary entry given as its
text (``" Paris"``) or its id. ``pos=None`` means the last position; ``target=None`` means
the model's own top prediction there. The SAE analyses' models are in engine/schemas/saes.py,
shared with the SAE routes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from engine.schemas.arrays import PackedArray
from engine.schemas.common import MAX_NAME, PromptRequest, Slot, TokenInfo
from engine.schemas.windows import MAX_WIDTH, WindowInfo, WindowParams

LAYER_WIDTH = 64  # every head of a layer: 64 heads x 64 x 64 float16 = 0.5 MB
LENS_MAX_K = 10

# a token's text, or its id
TargetRef = (
    Annotated[str, Field(max_length=MAX_NAME)] | Annotated[int, Field(ge=-(2**31), le=2**31)]
)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenOut(BaseModel):
    id: int
    text: str


class AnalysisRequest(PromptRequest):
    params: dict = Field(default_factory=dict)
    # pair analyses (engine/pairs.py) only: the other side, exactly one of the two
    model_b: Slot | None = Field(default=None, description="another slot, the same prompt")
    prompt_b: str | None = Field(default=None, description="another prompt, the same model")


# --- predictions.py -------------------------------------------------------------------
class Prediction(BaseModel):
    id: int
    text: str
    prob: float
    logit: float


class PredictionsParams(BaseModel):
    top_k: int = Field(default=5, ge=1, le=50)
    start: int = Field(default=0, ge=0, description="first position whose top-k is answered")
    width: int | None = Field(
        default=None, ge=1, le=MAX_WIDTH,
        description="positions whose top-k is answered (a view's window); None: every position",
    )  # fmt: skip


class PredictionsResult(BaseModel):
    tokens: list[TokenInfo]
    top: list[list[Prediction]] = Field(
        description="[pos - start][k]: next-token predictions after each position of the window"
    )
    start: int = Field(default=0, description="the position of top[0]")
    stop: int = Field(description="one past the position of top[-1]")
    loss: list[float | None] = Field(
        description="[pos]: -log p(token at pos | tokens before); None where nothing predicts it"
    )
    mean_loss: float | None


# --- attention.py, attention_layer.py, head_scores.py ---------------------------------
class AttentionParams(WindowParams):
    layer: int = Field(ge=0)
    head: int = Field(ge=0)
    overview: int = Field(
        default=128, ge=8, le=256, description="the overview's side, at most (max-pooled)"
    )


class AttentionResult(WindowInfo):
    layer: int
    head: int
    tokens: list[str] = Field(description="the window's tokens")
    pattern: PackedArray = Field(description="[query, key], both in [start, stop)")
    before: PackedArray = Field(description="[query]: attention to the keys before start")
    overview: PackedArray = Field(
        description="[query block, key block]: max of the pattern over stride x stride blocks"
    )
    overview_stride: int = Field(description="positions per overview cell, along each axis")


class HeadScoresParams(Params):
    pass


class HeadScore(BaseModel):
    name: str
    label: str
    description: str
    values: list[list[float]] | None = Field(description="[layer][head]; None when undefined")
    n_queries: int = Field(description="query positions the mean is over")
    reason: str | None = Field(default=None, description="why values is None")


class HeadScoresResult(BaseModel):
    tokens: list[TokenInfo]
    n_layers: int
    n_heads: int
    scores: list[HeadScore]


class AttentionLayerParams(WindowParams):
    layer: int = Field(ge=0)
    width: int = Field(default=48, ge=1, le=LAYER_WIDTH, description="positions in the window")


class AttentionLayerResult(WindowInfo):
    layer: int
    tokens: list[str] = Field(description="the window's tokens")
    patterns: PackedArray = Field(description="[head, query, key], both in [start, stop)")
    before: PackedArray = Field(description="[head, query]: attention to keys before start")


# --- logit_lens.py --------------------------------------------------------------------
class LensStage(StrEnum):
    resid_pre = "resid_pre"
    resid_mid = "resid_mid"
    resid_post = "resid_post"


class LogitLensParams(WindowParams):
    stage: LensStage = LensStage.resid_post
    top_k: int = Field(default=3, ge=1, le=LENS_MAX_K)
    width: int = Field(default=24, ge=1, le=64, description="positions in the window")


class LensRows(BaseModel):
    stage: LensStage
    rows: list[str] = Field(description="one label per residual stream read, input to output")
    row_layers: list[int] = Field(description="[row]: the block the row belongs to")


class LogitLensResult(LensRows, WindowInfo):
    tokens: list[TokenInfo] = Field(description="the window's tokens")
    top: list[list[list[Prediction]]] = Field(description="[row][pos - start][k]")


class LensTargetsParams(Params):
    stage: LensStage = LensStage.resid_post
    pos: int | None = Field(default=None, ge=0)
    targets: list[TargetRef] = Field(default_factory=list, max_length=10)


class LensTrace(BaseModel):
    token: TokenOut
    prob: list[float] = Field(description="[row]")
    logit: list[float] = Field(description="[row]")
    rank: list[int] = Field(description="[row]: 1 = the top token")


class LensTargetsResult(LensRows):
    pos: int
    traces: list[LensTrace]


# --- dla.py ---------------------------------------------------------------------------
class DLAParams(Params):
    pos: int | None = Field(default=None, ge=0)
    target: TargetRef | None = None
    baseline: TargetRef | None = Field(
        default=None, description="if given, attribute logit(target) - logit(baseline)"
    )


class DLAResult(BaseModel):
    pos: int
    token: TokenInfo = Field(description="the token at pos (the prediction is for pos+1)")
    target: TokenOut
    baseline: TokenOut | None
    metric: str = Field(description="'logit' or 'logit difference'")
    heads: list[list[float]] = Field(description="[layer][head]")
    mlps: list[float] = Field(description="[layer]")
    attn_bias: list[float] = Field(description="[layer]: the attention output bias b_O")
    embed: float
    pos_embed: float
    unembed_bias: float = Field(description="b_U of target (minus baseline)")
    total: float = Field(description="the sum of every term above")
    model_value: float = Field(description="what the model outputs: the logit (difference)")
    ln_scale: float = Field(description="the final layer norm's scale at pos, shared by all")
