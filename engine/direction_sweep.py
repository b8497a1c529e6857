"""Measuring an intervention on a direction, as the abliteration literature does.

For each value of a small sweep (the intervention's ``coeff``; for ``cap`` its upper end
``hi``): the *rate* of a behaviour on a held-out prompt set (greedy continuations, classified by
keywords or by a saved probe direction read by the unmodified model) and the *KL* on harmless
prompts: KL(clean || intervened) of the next-token distributions at every position of each
harmless prompt (the prompt's own positions, not generated tokens), averaged over positions,
then over prompts. The ``direction_sweep`` job runs it; results are cached by their inputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from engine import directions, interventions
from engine.schemas.directions import Classifier, SweepParams, SweepResult, SweepRow

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.loading import LoadedModel
    from engine.service import Engine

VERSION = 1
N_EXAMPLES = 4


def encode(lm: LoadedModel, texts: list[str], chat: bool) -> list[list[int]]:
    """Token ids of each text: a one-turn chat prompt (the tokenizer's chat template, which
    holds the BOS) or the text after the BOS."""
    tok = lm.model.tokenizer
    if chat and getattr(tok, "chat_template", None):
        msgs = [[{"role": "user", "content": t}] for t in texts]
        rendered = [
            tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in msgs
        ]
        return [tok.encode(r) for r in rendered]
    return [lm.model.to_tokens(t, prepend_bos=True)[0, : lm.n_ctx].tolist() for t in texts]


@torch.inference_mode()
def greedy(
    model, prompts: list[list[int]], hooks: list, max_new: int, eos: int | None
) -> list[list[int]]:
    """Greedy continuations (ids, up to and without EOS) with `hooks` on; prompts of one length
    run as one batch, so no padding is ever attended to."""
    out: list[list[int]] = [[] for _ in prompts]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    with model.hooks(fwd_hooks=hooks):
        for idx in by_len.values():
            ids = torch.tensor([prompts[i] for i in idx], device=model.cfg.device)
            done = torch.zeros(len(idx), dtype=torch.bool, device=ids.device)
            for _ in range(min(max_new, model.cfg.n_ctx - ids.shape[1])):
                nxt = model(ids)[:, -1].argmax(-1)
                if eos is not None:
                    nxt[done] = eos
                    done |= nxt == eos
                ids = torch.cat([ids, nxt[:, None]], 1)
                if done.all():
                    break
            for row, i in enumerate(idx):
                gen = ids[row, len(prompts[i]) :].tolist()
                out[i] = gen[: gen.index(eos)] if eos is not None and eos in gen else gen
    return out


def mean_kl(clean: Float[Tensor, "pos vocab"], edited: Float[Tensor, "pos vocab"]) -> float:
    """Mean over positions of KL(clean || edited) of the next-token distributions (nats)."""
    p, q = clean.float().log_softmax(-1), edited.float().log_softmax(-1)
    return float((p.exp() * (p - q)).sum(-1).mean())


@torch.inference_mode()
def prompt_kl(model, prompts: list[list[int]], hooks: list) -> float:
    """Mean over prompts of ``mean_kl`` at each prompt's positions."""
    kls = []
    for p in prompts:
        ids = torch.tensor([p], device=model.cfg.device)
        kls.append(mean_kl(model(ids)[0], model.run_with_hooks(ids, fwd_hooks=hooks)[0]))
    return sum(kls) / len(kls)


@torch.inference_mode()
def probe_scores(
    model, prompts: list[list[int]], gens: list[list[int]], hook: str, r: Float[Tensor, " d"]
) -> list[float]:
    """Mean projection onto unit `r` at `hook` over each continuation's tokens, read by the
    unmodified model on prompt + continuation (-inf for an empty continuation)."""
    out = []
    for p, g in zip(prompts, gens, strict=True):
        if not g:
            out.append(float("-inf"))
            continue
        ids: Int[Tensor, "1 pos"] = torch.tensor([p + g], device=model.cfg.device)
        _, cache = model.run_with_cache(ids, names_filter=lambda n: n == hook)
        out.append(float((cache[hook][0, len(p) :].float() @ r.to(ids.device)).mean()))
    return out


def classify(texts: list[str], c: Classifier, scores: list[float] | None = None) -> list[bool]:
    """Keywords: any of them in the text, case-insensitive; a probe: its score > threshold."""
    if c.keywords:
        kws = [k.lower() for k in c.keywords]
        return [any(k in t.lower() for k in kws) for t in texts]
    return [s > c.threshold for s in scores or []]


def _rate(
    lm: LoadedModel, p: SweepParams, hooks: list, prompts: list[list[int]], probe
) -> tuple[float, list[str]]:
    tok = lm.model.tokenizer
    gens = greedy(lm.model, prompts, hooks, p.max_new_tokens, tok.eos_token_id)
    texts = [tok.decode(g) for g in gens]
    scores = (
        probe_scores(
            lm.model, prompts, gens, probe.hook, directions.tensor(probe, lm.model.cfg.device)
        )
        if probe
        else None
    )
    hits = classify(texts, p.classifier, scores)
    return sum(hits) / len(hits), texts


def _prepared(lm: LoadedModel, p: SweepParams, store) -> tuple:
    probe = store.usable(p.classifier.probe) if p.classifier.probe else None
    return encode(lm, p.prompts, p.chat), encode(lm, p.harmless, p.chat), probe


def row(lm: LoadedModel, p: SweepParams, store, value: float, prepared: tuple) -> SweepRow:
    """The rate and the KL with the intervention at `value` (``coeff``; ``hi`` for a cap)."""
    prompts, harmless, probe = prepared
    field = "hi" if p.intervention.mode == "cap" else "coeff"
    it = p.intervention.model_copy(update={field: value})
    if it.mode == "cap" and it.lo is not None and it.lo > value:
        it = it.model_copy(update={"lo": value})
    applied = interventions.resolve(lm, [it], store)
    hooks = interventions.hooks(applied, lm.model.cfg.device, lm.model.cfg.dtype)
    rate, texts = _rate(lm, p, hooks, prompts, probe)
    kl = prompt_kl(lm.model, harmless, hooks)
    return SweepRow(value=value, rate=rate, kl=kl, examples=texts[:N_EXAMPLES])


def _at(lm: LoadedModel, p: SweepParams, store) -> list[str]:
    it = p.intervention
    d = store.usable(it.name, it.allow_other_model)
    return interventions.hook_points(it.mode, it.layers, d.hook, lm.n_layers)


def baseline(lm: LoadedModel, p: SweepParams, store, prepared: tuple) -> float:
    return _rate(lm, p, [], prepared[0], prepared[2])[0]


def measure(lm: LoadedModel, p: SweepParams, store) -> SweepResult:
    """The whole sweep at once (see the module's docstring; the job runs it value by value)."""
    prepared = _prepared(lm, p, store)
    rows = [row(lm, p, store, v, prepared) for v in p.values]
    return SweepResult(direction=p.intervention.name, mode=p.intervention.mode,
                       baseline_rate=baseline(lm, p, store, prepared), rows=rows,
                       hook_points=_at(lm, p, store))  # fmt: skip


# --- the job ---------------------------------------------------------------------------------
def check(engine: Engine, p: SweepParams) -> SweepParams:
    """The direction (and a probe classifier's) usable here, the layers and gate valid."""
    lm = engine.require_model()
    store = engine.compute(directions.store, engine)
    engine.compute(interventions.resolve, lm, [p.intervention], store)
    if p.classifier.probe:
        store.usable(p.classifier.probe)
    return p


def run(engine: Engine, ctx: JobContext, p: SweepParams) -> dict:
    lm = engine.require_model()
    store = engine.compute(directions.store, engine)
    d = store.usable(p.intervention.name, p.intervention.allow_other_model)
    blob = json.dumps([p.model_dump(mode="json"), d.vector, d.hook], sort_keys=True).encode()
    key = f"direction_sweep:{VERSION}:{store.fingerprint}:{hashlib.sha256(blob).hexdigest()}"
    if (hit := engine.cache.get(key)) is not None:
        ctx.progress(1.0, "from the cache")
        return json.loads(hit)
    prepared = engine.compute(_prepared, lm, p, store)
    ctx.progress(0.0, "without the intervention")
    base = engine.compute(baseline, lm, p, store, prepared)
    rows = []
    for k, value in enumerate(p.values):
        ctx.progress((k + 1) / (len(p.values) + 1), f"{p.intervention.mode} at {value:g}")
        rows.append(engine.compute(row, lm, p, store, value, prepared))
    result = SweepResult(direction=d.name, mode=p.intervention.mode, baseline_rate=base,
                         rows=rows, hook_points=_at(lm, p, store)).model_dump(mode="json")  # fmt: skip
    engine.cache.set(key, json.dumps(result).encode())
    return result
