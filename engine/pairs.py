"""Pair analyses: two runs compared position by position, computed in the engine.

A pair is two models on one prompt (``model_b``: another slot) or one model on two prompts
(``prompt_b``: A/B prompts, e.g. clean vs corrupted); exactly one of the two. Two models
compare token by token only when their tokenizers are the same (equal vocabularies, the same
BOS, unembeddings as wide) and split the prompt the same way; two prompts only when they
have as many tokens. Anything else is a 422 that says why, before any forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from engine.errors import EngineError
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.common import TokenInfo
from engine.session import Lru

if TYPE_CHECKING:
    from engine.analyses.base import Analysis
    from engine.service import Engine

PairKind = Literal["models", "prompts"]
_compatible: Lru = Lru(16)  # (fingerprint A, fingerprint B) -> why not comparable, or ""


@dataclass(frozen=True)
class RunPair:
    """Side A's and side B's runs, as long as each other (checked before they are made)."""

    a: PromptRun
    b: PromptRun
    kind: PairKind


@dataclass(frozen=True)
class OtherSide:
    """Side B of a pair request: its model and tokens, and what its result's key adds."""

    lm: LoadedModel
    ids: list[int]
    infos: list[TokenInfo]
    kind: PairKind
    light_b: bool = False  # B is read only through logits and streams (``Analysis.light_b``)

    @property
    def key(self) -> dict:
        return {"_b": {"model": self.lm.fingerprint, "tokens": self.ids, "kind": self.kind}}

    def pair(self, a: PromptRun, b: PromptRun) -> RunPair:
        """The pair of side A's run and side B's; B's forward pass, when the run store has not
        run it yet, a light run if the analysis reads only logits and residual streams: side A's
        run is what every view of the prompt reads, side B's full cache is left until one asks."""
        if self.light_b:
            b.run_light()
        return RunPair(a=a, b=b, kind=self.kind)


def tokenizer_mismatch(a: LoadedModel, b: LoadedModel) -> str:
    """Why `a` and `b` cannot be compared token by token, or "" when they can."""
    key = (a.fingerprint, b.fingerprint)
    why = _compatible.get(key)
    if why is None:
        why = _mismatch(a, b)
        _compatible.put(key, why)
    return why


def _mismatch(a: LoadedModel, b: LoadedModel) -> str:
    ta, tb = a.model.tokenizer, b.model.tokenizer
    if a.model.cfg.d_vocab != b.model.cfg.d_vocab:
        return (
            f"their unembeddings differ in width ({a.name}: {a.model.cfg.d_vocab} logits, "
            f"{b.name}: {b.model.cfg.d_vocab})"
        )
    va, vb = ta.get_vocab(), tb.get_vocab()
    if va != vb:
        only = sorted(set(va.items()) ^ set(vb.items()), key=lambda kv: kv[1])[:1]
        example = f"; e.g. {only[0][0]!r} (id {only[0][1]}) is in one only" if only else ""
        return (
            f"their tokenizers differ ({a.name}: {len(va)} tokens, {b.name}: {len(vb)} tokens"
            f"{example})"
        )
    if ta.bos_token_id != tb.bos_token_id:
        return f"their BOS tokens differ ({ta.bos_token_id} and {tb.bos_token_id})"
    return ""


def refuse_same_slot(model: str, model_b: str) -> None:
    """A 422 when both sides are one slot: on one prompt (or one text set) that pair is a
    no-op diff. One model on two prompts is ``prompt_b``, not ``model_b``."""
    if model == model_b:
        raise EngineError(
            422, "same_slot",
            f"Side A and side B are both slot {model!r}: a model compared with itself on the "
            "same input is a diff of nothing. Give another slot as model_b (load a second "
            "model into it first), or, to compare two prompts on this model, prompt_b instead.",
            {"slot": model},
        )  # fmt: skip


def other_side(
    engine: Engine,
    analysis: Analysis,
    req: AnalysisRequest,
    lm: LoadedModel,
    ids: list[int],
    params: BaseModel,
) -> OtherSide | None:
    """Side B of `req` for a pair analysis (None for any other); a clear 4xx when the request
    or the pair does not fit."""
    given = [f for f in ("model_b", "prompt_b") if getattr(req, f) is not None]
    if not analysis.pair:
        if given:
            raise EngineError(
                422, "not_a_pair_analysis",
                f"{analysis.name} runs on one model and one prompt: drop {given[0]}.",
            )  # fmt: skip
        return None
    if len(given) != 1:
        raise EngineError(
            422, "pair_needs_one_b",
            f"{analysis.name} compares two runs: give exactly one of model_b (another model, "
            f"the same prompt) or prompt_b (another prompt, the same model); got {given or 'none'}.",
        )  # fmt: skip
    if req.model_b is not None:
        refuse_same_slot(req.model, req.model_b)
        lm_b = engine.require_model(req.model_b)
        if analysis.name in lm_b.unavailable:
            raise EngineError(
                422, "unavailable_here", f"{analysis.name}: {lm_b.unavailable[analysis.name]}"
            )
        why = tokenizer_mismatch(lm, lm_b)
        if why:
            raise EngineError(
                422, "not_comparable",
                f"Slots {req.model!r} and {req.model_b!r} cannot be compared token by token: "
                f"{why}.",
                {"reason": why},
            )  # fmt: skip
        ids_b, infos_b = engine.tokenize(req.prompt, req.prepend_bos, req.model_b)
        if ids_b != ids:
            raise EngineError(
                422, "not_comparable",
                f"Slots {req.model!r} and {req.model_b!r} split this prompt into different "
                "tokens, so it cannot be compared token by token.",
                {"reason": "different tokens"},
            )  # fmt: skip
        if analysis.check_b is None:
            analysis.check(lm_b, params)
        else:
            analysis.check_b(lm, lm_b, params)
        return OtherSide(lm_b, ids_b, infos_b, "models", analysis.light_b)
    ids_b, infos_b = engine.tokenize(req.prompt_b, req.prepend_bos, req.model)
    if len(ids_b) != len(ids):
        raise EngineError(
            422, "prompt_lengths_differ",
            f"Prompt A has {len(ids)} tokens and prompt B {len(ids_b)}: A/B prompts are "
            "compared position by position, so they need as many tokens.",
            {"n_tokens_a": len(ids), "n_tokens_b": len(ids_b)},
        )  # fmt: skip
    return OtherSide(lm, ids_b, infos_b, "prompts", analysis.light_b)
