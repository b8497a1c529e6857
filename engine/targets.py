"""Target tokens: what a lens or an attribution is about, named by text or by id.

A target is one vocabulary entry. People give it as the token's text (``" Paris"``, leading
space included) or as its id; text that is not exactly one token is refused with a message
that shows how it tokenizes, so the fix is obvious.
"""

from __future__ import annotations

from engine.errors import EngineError
from engine.loading import LoadedModel
from engine.schemas.views import TargetRef, TokenOut


def token_text(lm: LoadedModel, token_id: int) -> str:
    return lm.model.tokenizer.decode([token_id])


def resolve(lm: LoadedModel, ref: TargetRef, *, what: str = "target") -> int:
    """The token id of `ref`, or a 422 saying why it does not name one token."""
    d_vocab = lm.model.cfg.d_vocab
    if isinstance(ref, int):
        if not 0 <= ref < d_vocab:
            raise EngineError(
                422,
                f"{what}_out_of_range",
                f"{what} token id {ref} is out of range: the vocabulary has {d_vocab} tokens "
                f"(ids 0-{d_vocab - 1}).",
                {what: ref, "d_vocab": d_vocab},
            )
        return ref
    if ref == "":
        raise EngineError(422, f"empty_{what}", f"The {what} token is empty: give a token or id.")
    ids = lm.model.tokenizer.encode(ref, add_special_tokens=False)
    if len(ids) != 1:
        parts = " + ".join(f"{token_text(lm, i)!r} (id {i})" for i in ids)
        raise EngineError(
            422,
            f"{what}_not_one_token",
            f"The {what} {ref!r} is {len(ids)} tokens for this model, not one: {parts}. "
            "Give a single token (mind the leading space) or a token id.",
            {what: ref, "ids": ids},
        )
    return ids[0]


def token_out(lm: LoadedModel, token_id: int) -> TokenOut:
    return TokenOut(id=token_id, text=token_text(lm, token_id))


def check(lm: LoadedModel, *refs: TargetRef | None, what: str = "target") -> None:
    for ref in refs:
        if ref is not None:
            resolve(lm, ref, what=what)
