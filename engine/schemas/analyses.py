"""Parameters and results of the direct (short) analyses."""

from __future__ import annotations

from pydantic import BaseModel, Field

from engine.schemas.common import PromptRequest, TokenInfo


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


class AttentionParams(BaseModel):
    layer: int = Field(ge=0)
    head: int = Field(ge=0)


class AttentionResult(BaseModel):
    layer: int
    head: int
    tokens: list[str]
    pattern: list[list[float]] = Field(description="[query_pos][key_pos]")


class AnalysisRequest(PromptRequest):
    params: dict = Field(default_factory=dict)
