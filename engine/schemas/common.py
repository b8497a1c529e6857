"""Shapes shared by every endpoint: errors and the prompt a request is about."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. 'prompt_too_long'")
    message: str = Field(description="one sentence for a person")
    detail: dict = Field(default_factory=dict)


class ErrorBody(BaseModel):
    error: ErrorInfo


class PromptRequest(BaseModel):
    prompt: str = Field(description="the text to analyse")
    prepend_bos: bool = Field(default=True, description="put the model's BOS token first")


class TokenInfo(BaseModel):
    pos: int
    id: int
    text: str = Field(description="the token decoded on its own")
    start: int | None = Field(description="char offset in the prompt; None for BOS")
    end: int | None


class TokenizeResponse(BaseModel):
    tokens: list[TokenInfo]
    n_ctx: int
