"""Shapes shared by every endpoint: errors and the prompt a request is about."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

# bounds on what a request may carry, so an absurd value is a 422 at once, never a 500 later
MAX_NAME = 256  # ids, hook points, labels, dataset splits and columns, device names
MAX_PATH = 1024  # file and directory paths, hub names
MAX_TEXT = 100_000  # one text (a prompt's own limit is enforced with a 413: validation.py)
Name = Annotated[str, Field(max_length=MAX_NAME)]
PathName = Annotated[str, Field(min_length=1, max_length=MAX_PATH)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
SEED_MAX = 2**32 - 1
# a model slot of the engine: "a" is the primary model, the default of every request
PRIMARY = "a"
SLOT_PATTERN = r"^[a-z][a-z0-9_]{0,15}$"
Slot = Annotated[str, Field(pattern=SLOT_PATTERN)]


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. 'prompt_too_long'")
    message: str = Field(description="one sentence for a person")
    detail: dict = Field(default_factory=dict)


class ErrorBody(BaseModel):
    error: ErrorInfo


class PromptRequest(BaseModel):
    prompt: str = Field(description="the text to analyse")
    prepend_bos: bool = Field(default=True, description="put the model's BOS token first")
    model: Slot = Field(default=PRIMARY, description="the model slot it runs on ('a': primary)")


class TokenInfo(BaseModel):
    pos: int
    id: int
    text: str = Field(description="the token decoded on its own")
    start: int | None = Field(description="char offset in the prompt; None for BOS")
    end: int | None


class TokenizeResponse(BaseModel):
    tokens: list[TokenInfo]
    n_ctx: int
