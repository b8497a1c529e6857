"""Checks on what people send, each failing with a clear, specific message."""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ValidationError

from engine.errors import EngineError

MAX_PROMPT_CHARS = 100_000
ALLOWED_CONTROL = {"\n", "\t", "\r"}


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def check_prompt_text(prompt: str) -> None:
    """Refuse empty prompts, control characters, lone surrogates and noncharacters."""
    if not prompt or not prompt.strip():
        raise EngineError(422, "empty_prompt", "The prompt is empty: type some text to analyse.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise EngineError(
            413,
            "prompt_too_long",
            f"The prompt has {len(prompt):,} characters; at most {MAX_PROMPT_CHARS:,} are accepted.",
        )
    bad: list[tuple[int, str, str]] = []
    for i, ch in enumerate(prompt):
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in ALLOWED_CONTROL:
            bad.append((i, _describe(ch), "control character"))
        elif cat == "Cs":
            bad.append((i, _describe(ch), "lone surrogate (not valid Unicode text)"))
        elif (0xFDD0 <= ord(ch) <= 0xFDEF) or (ord(ch) & 0xFFFE) == 0xFFFE:
            bad.append((i, _describe(ch), "Unicode noncharacter"))
    if bad:
        first = bad[0]
        raise EngineError(
            422,
            "invalid_characters",
            f"The prompt contains {len(bad)} character(s) that cannot be analysed; the first is "
            f"a {first[2]} ({first[1]}) at offset {first[0]}. Remove it and try again.",
            {"positions": [b[0] for b in bad[:20]], "codepoints": [b[1] for b in bad[:20]]},
        )


def check_length(n_tokens: int, n_ctx: int, model_max: int | None = None) -> None:
    if n_tokens > n_ctx:
        capped = model_max is not None and model_max > n_ctx
        what = (
            f"the engine's context cap is {n_ctx} tokens (the model's own is {model_max}; "
            "max_context raises the cap if memory allows)"
            if capped
            else f"this model's context is {n_ctx} tokens"
        )
        raise EngineError(
            422,
            "prompt_too_long",
            f"The prompt is {n_tokens} tokens (with BOS) but {what}. "
            f"Shorten it by {n_tokens - n_ctx} token(s).",
            {"n_tokens": n_tokens, "n_ctx": n_ctx, "model_max_context": model_max},
        )


def check_index(
    kind: str, value: int, count: int, *, owner: str = "this model", noun: str | None = None
) -> None:
    if not 0 <= value < count:
        raise EngineError(
            422,
            f"{kind}_out_of_range",
            f"{kind} {value} is out of range: {owner} has {count} {noun or kind + 's'} "
            f"(0-{count - 1}).",
            {kind: value, "count": count},
        )


def parse_params(model: type[BaseModel], raw: dict) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'params'}: {err['msg']}" for err in e.errors()
        )
        raise EngineError(422, "bad_params", f"Invalid parameters: {problems}") from None
