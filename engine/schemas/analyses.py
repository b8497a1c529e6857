"""Parameters and results of the direct (short) analyses."""

from __future__ import annotations

from pydantic import BaseModel, Field

from engine.schemas.arrays import PackedArray
from engine.schemas.common import PromptRequest, TokenInfo
from engine.schemas.windows import WindowInfo, WindowParams


class Prediction(BaseModel):
    id: int
    text: str
    prob: float
    logit: float


class PredictionsParams(BaseModel):
    top_k: int = Field(default=5, ge=1, le=50)


class PredictionsResult(BaseModel):
    tokens: list[TokenInfo]
    top: list[list[Prediction]] = Field(description="[pos][k]: next-token predictions after pos")
    loss: list[float | None] = Field(
        description="[pos]: -log p(token at pos | tokens before); None where nothing predicts it"
    )
    mean_loss: float | None


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


class AnalysisRequest(PromptRequest):
    params: dict = Field(default_factory=dict)
