"""The model-diffing jobs over a text set: ``adiff_lens`` (the activation-difference lens,
engine/adiff.py) and ``latent_diff_set`` (one SAE on both models, engine/analyses/diff_latents.py).

Side A is the ``model`` slot, side B the ``model_b`` slot; their tokenizers must be the same
(engine/pairs.py). The texts are the built-in neutral set (``neutral_texts.txt``: short
stories, IOI sentences and facts drawn from the base organism's corpus, none about the chat
organism's implanted differences) or a file or dataset (engine/text_sources.py, confined to
the data directories). ``latent_diff_set`` may take a second, control set from the same
sources (read the same way); its latents are then ranked by the change on the texts minus the
change on the control. A result is written under the cache directory, keyed by both models'
fingerprints, the SAE, the texts and the parameters, and served from there next time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine import adiff, pairs, saes, text_sources
from engine.analyses import diff_latents as dl
from engine.atomic import atomic_write
from engine.errors import EngineError
from engine.jobs import JobCancelled, JobContext
from engine.loading import LoadedModel
from engine.schemas.analyses import TokenOut
from engine.schemas.diff_latents import (
    AdiffLensParams,
    AdiffLensResult,
    AlignedLatent,
    LatentDiffSetParams,
    LatentDiffSetResult,
    LensLayer,
    LensReading,
    LensSae,
    TextSetParams,
)

if TYPE_CHECKING:
    from engine.service import Engine

NEUTRAL_FILE = Path(__file__).with_name("neutral_texts.txt")


def builtin_texts() -> list[str]:
    return [t for t in NEUTRAL_FILE.read_text(encoding="utf-8").splitlines() if t.strip()]


def sides(engine: Engine, p: TextSetParams) -> tuple[LoadedModel, LoadedModel]:
    """Both sides' models; a clear 4xx when a slot is empty, the same, or not comparable."""
    pairs.refuse_same_slot(p.model, p.model_b)
    lm_a, lm_b = engine.require_model(p.model), engine.require_model(p.model_b)
    why = pairs.tokenizer_mismatch(lm_a, lm_b)
    if why:
        raise EngineError(422, "not_comparable",
                          f"Slots {p.model!r} and {p.model_b!r} cannot be compared token by "
                          f"token: {why}.", {"reason": why})  # fmt: skip
    if lm_a.model.cfg.d_model != lm_b.model.cfg.d_model:
        raise EngineError(422, "not_comparable", "The two models' residual streams differ in "
                          f"width ({lm_a.model.cfg.d_model}, {lm_b.model.cfg.d_model}).")  # fmt: skip
    return lm_a, lm_b


def chat_tokenizer(lm_a: LoadedModel, lm_b: LoadedModel):
    """The tokenizer whose chat template wraps the texts: side B's (the chat model of a
    base/chat pair) when it has one, else side A's; a 422 when neither has one."""
    for lm in (lm_b, lm_a):
        if getattr(lm.model.tokenizer, "chat_template", None):
            return lm.model.tokenizer
    raise EngineError(422, "no_chat_template",
                      f"Neither {lm_a.name} nor {lm_b.name} has a chat template.")  # fmt: skip


def rows_for(lm_a: LoadedModel, lm_b: LoadedModel, texts: list[str], chat: bool) -> list[list[int]]:
    tok = chat_tokenizer(lm_a, lm_b) if chat else lm_a.model.tokenizer
    return adiff.token_rows(tok, texts, min(lm_a.n_ctx, lm_b.n_ctx), chat=chat)


def check_source(engine: Engine, p: TextSetParams) -> TextSetParams:
    if p.chat:
        chat_tokenizer(*sides(engine, p))
    if p.path or p.dataset:
        return text_sources.check(p, engine.settings)  # type: ignore[arg-type]  # same fields
    return p


def read_texts(engine: Engine, p: TextSetParams, tick) -> tuple[list[str], str, str]:
    """(texts, their name for the cache key, where they came from)."""
    if p.path or p.dataset:
        return text_sources.read(p, engine.settings, tick)  # type: ignore[arg-type]
    texts = builtin_texts()[: p.max_texts]
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:10]
    return texts, f"neutral-{digest}", "the built-in neutral texts"


def _cache_path(engine: Engine, kind: str, parts: dict) -> Path:
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return Path(engine.settings.cache_dir) / "model_diff" / f"{kind}-{key}.json"


def _ticker(ctx: JobContext, n: int, what: str):
    def tick(i: int | None = None) -> None:
        if i is None:
            if ctx.cancelled:
                raise JobCancelled()
            return
        ctx.progress(0.95 * i / max(n, 1), f"{what} {i + 1} of {n}")

    return tick


# --- adiff_lens ----------------------------------------------------------------------------
def check_lens(engine: Engine, p: AdiffLensParams) -> AdiffLensParams:
    sides(engine, p)
    return check_source(engine, p)  # type: ignore[return-value]


def _tokens(tok, ids: list[int]) -> list[TokenOut]:
    return [TokenOut(id=i, text=tok.decode([i])) for i in ids]


def _aligned(d: saes.Dictionary, ids: list[int], cos: list[float]) -> list[AlignedLatent]:
    return [AlignedLatent(index=i, cosine=c, label=dl.label(d, i))
            for i, c in zip(ids, cos, strict=True)]  # fmt: skip


def reading(
    lm_a: LoadedModel, lm_b: LoadedModel, deltas: torch.Tensor, norm_a: torch.Tensor,
    hooks: list[str], n_lens: int, pos: int | None, n: int, k: int,
) -> LensReading:  # fmt: skip
    """One mean difference per hook (the first `n_lens` are the lens layers, the rest SAE
    hooks) read through side B's unembedding and side A's SAEs."""
    tok = lm_b.model.tokenizer
    skip = set(tok.all_special_ids)
    layers = []
    for j in range(n_lens):
        ti, tv, bi, bv = adiff.unembed_read(lm_b.model, deltas[j], k, skip)
        layers.append(LensLayer(hook=hooks[j], layer=j, norm=float(deltas[j].norm()),
                                norm_a=float(norm_a[j]), top_tokens=_tokens(tok, ti),
                                top_values=tv, bottom_tokens=_tokens(tok, bi), bottom_values=bv))  # fmt: skip
    out_saes = []
    for info in saes.for_model(lm_a).infos():
        d = saes.for_model(lm_a).get(info.id)
        if d.reads not in hooks:
            continue
        delta = deltas[hooks.index(d.reads)]
        ti, tv, bi, bv = adiff.aligned_latents(d.W_dec, delta, k)
        out_saes.append(LensSae(sae=info.id, hook=d.reads, latents=_aligned(d, ti, tv),
                                anti=_aligned(d, bi, bv)))  # fmt: skip
    return LensReading(pos=pos, n=n, layers=layers, saes=out_saes)


def lens_hooks(lm_a: LoadedModel) -> tuple[list[str], int]:
    """The lens's hooks, then those of side A's SAEs that read the residual stream elsewhere."""
    hooks = adiff.resid_hooks(lm_a.n_layers)
    n_lens = len(hooks)
    for info in saes.for_model(lm_a).infos():
        h = saes.for_model(lm_a).get(info.id).reads
        if h not in hooks and "resid" in h:
            hooks.append(h)
    return hooks, n_lens


def run_lens(engine: Engine, ctx: JobContext, p: AdiffLensParams) -> dict:
    lm_a, lm_b = sides(engine, p)
    tick = _ticker(ctx, 1, "")
    texts, name, where = read_texts(engine, p, lambda: tick())
    hooks, n_lens = lens_hooks(lm_a)
    sae_keys = [i.id for i in saes.for_model(lm_a).infos()]  # the SAEs it reads through
    parts = {"a": lm_a.fingerprint, "b": lm_b.fingerprint, "texts": name, "hooks": hooks,
             "saes": sae_keys, "params": p.model_dump(mode="json", exclude={"model", "model_b"}),
             "v": 2}  # fmt: skip
    path = _cache_path(engine, "adiff_lens", parts)
    if path.is_file():
        return json.loads(path.read_text()) | {"cached": True}
    rows = rows_for(lm_a, lm_b, texts, p.chat)
    step = _ticker(ctx, len(rows), "text")

    sums = adiff.DiffSums(hooks, p.positions, lm_a.model.cfg.d_model)
    for i, ids in enumerate(rows):
        step(i)
        engine.compute(sums.add, lm_a.model, lm_b.model, ids)
    ctx.progress(0.97, "reading")

    def read():
        per_pos, mean, norm_a, count = sums.result()
        args = (lm_a, lm_b)
        by_pos = [reading(*args, per_pos[i], norm_a, hooks, n_lens, i + 1, count[i], p.top_k)
                  for i in range(p.positions) if count[i]]  # fmt: skip
        return reading(*args, mean, norm_a, hooks, n_lens, None, sum(count), p.top_k), by_pos

    mean_r, by_pos = engine.compute(read)
    res = AdiffLensResult(model_a=lm_a.name, model_b=lm_b.name, over=f"{len(texts)} texts of {where}",
                          n_texts=len(texts), chat=p.chat, positions=p.positions,
                          normalisation=adiff.NORMALISATION, mean=mean_r, by_position=by_pos)  # fmt: skip
    doc = res.model_dump(mode="json")
    atomic_write(path, json.dumps(doc))
    return doc


# --- latent_diff_set -----------------------------------------------------------------------
def check_set(engine: Engine, p: LatentDiffSetParams) -> LatentDiffSetParams:
    lm_a, lm_b = sides(engine, p)
    d = saes.for_model(lm_a).get(p.sae)
    if d.reads not in lm_b.model.hook_dict:
        raise EngineError(422, "sae_hook_missing",
                          f"Side B ({lm_b.name}) has no hook point {d.reads!r}.")  # fmt: skip
    p = check_source(engine, p)  # type: ignore[assignment]
    if p.control is not None and (p.control.path or p.control.dataset):
        control = text_sources.check(p.control, engine.settings)  # type: ignore[arg-type]
        p = p.model_copy(update={"control": control})
    return p


def _set_stats(
    engine: Engine, ctx: JobContext, lm_a: LoadedModel, lm_b: LoadedModel, d: saes.Dictionary,
    p: LatentDiffSetParams, texts: list[str], n_examples: int, what: str, span: tuple[float, float],
) -> dl.SetStats:  # fmt: skip
    """Both models' SAE activations over `texts`, summed (progress within `span`)."""
    rows = rows_for(lm_a, lm_b, texts, p.chat)
    special = set(lm_a.model.tokenizer.all_special_ids)
    stats = dl.SetStats(d.d_latent, n_examples, device=lm_a.device)
    lo, hi = span
    for i, ids in enumerate(rows):
        if ctx.cancelled:
            raise JobCancelled()
        ctx.progress(lo + (hi - lo) * i / max(len(rows), 1), f"{what} {i + 1} of {len(rows)}")
        engine.compute(dl.add_text, stats, d, lm_a.model, lm_b.model, ids, special, p.where, i)
    return stats


def run_set(engine: Engine, ctx: JobContext, p: LatentDiffSetParams) -> dict:
    lm_a, lm_b = sides(engine, p)
    d = saes.for_model(lm_a).get(p.sae)
    tick = _ticker(ctx, 1, "")
    texts, name, where = read_texts(engine, p, lambda: tick())
    c_texts, c_name, c_where = [], None, None
    if p.control is not None:
        c_texts, c_name, c_where = read_texts(engine, p.control, lambda: tick())  # type: ignore[arg-type]
    parts = {"a": lm_a.fingerprint, "b": lm_b.fingerprint, "sae": d.key, "texts": name,
             "control": c_name, "params": p.model_dump(mode="json", exclude={"model", "model_b"}),
             "v": 3}  # fmt: skip
    path = _cache_path(engine, "latent_diff_set", parts)
    if path.is_file():
        return json.loads(path.read_text()) | {"cached": True}
    split = 0.95 if p.control is None else 0.95 * len(texts) / max(len(texts) + len(c_texts), 1)
    stats = _set_stats(engine, ctx, lm_a, lm_b, d, p, texts, p.n_examples, "text", (0, split))
    control = None
    if p.control is not None:
        control = _set_stats(engine, ctx, lm_a, lm_b, d, p, c_texts, 0, "control text",
                             (split, 0.95))  # fmt: skip
    ctx.progress(0.97, "ranking")
    tok = lm_a.model.tokenizer
    vocab = tok.batch_decode([[i] for i in range(lm_a.model.cfg.d_vocab)])
    up, down, f_up, f_down = dl.set_changes(stats, d, p.n_top, vocab, control)
    res = LatentDiffSetResult(sae=d.info, model_a=lm_a.name, model_b=lm_b.name,
                              over=f"{len(texts)} texts of {where}", n_texts=len(texts),
                              n_tokens=stats.n, chat=p.chat, where=p.where, increased=up,
                              decreased=down,
                              freq_increased=f_up, freq_decreased=f_down,
                              control_over=None if control is None
                              else f"{len(c_texts)} texts of {c_where}",
                              n_control_texts=len(c_texts),
                              n_control_tokens=0 if control is None else control.n)  # fmt: skip
    doc = res.model_dump(mode="json")
    atomic_write(path, json.dumps(doc))
    return doc
