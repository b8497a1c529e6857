"""SAE latents of a prompt: the strongest latents at each token, one latent across the tokens,
and the prompt's strongest latents with their labels.

Activations are the SAE's ``encode`` of the prompt run's cached activation at the SAE's hook
point, at every position (BOS included: the view shows it, the strongest-latents table leaves
special tokens out, as the SAEs were trained without them).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from engine import saes
from engine.analyses.base import Analysis
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.saes import LatentRef, SaeLatentsParams, SaeLatentsResult, StrongLatent


def latent_acts(run: PromptRun, d: saes.Dictionary) -> Float[Tensor, "pos d_latent"]:
    """The dictionary's latent activations on the prompt (encode of the cached activation)."""
    return d.encode(run.cache[d.reads]).float()


def top_latents(
    acts: Float[Tensor, "pos d_latent"], k: int
) -> tuple[Float[Tensor, "pos k"], Int[Tensor, "pos k"], Bool[Tensor, "pos k"]]:
    """Each position's `k` strongest latents, strongest first: their activations, their
    indices, and which of them fire (activation above 0; the others are not shown)."""
    vals, idx = acts.topk(min(k, acts.shape[-1]), dim=-1)
    return vals, idx, vals > 0


def content_positions(run: PromptRun) -> list[int]:
    special = set(run.lm.model.tokenizer.all_special_ids)
    return [p for p, t in enumerate(run.token_ids) if t not in special]


def _strongest(acts: Tensor, run: PromptRun, d: saes.Dictionary, n: int) -> list[StrongLatent]:
    keep = content_positions(run)
    if not keep:
        return []
    sub = acts[keep]  # [content pos, d_latent]
    best, where = sub.max(0)
    count = (sub > 0).sum(0)
    order = best.argsort(descending=True)[:n]
    out = []
    for i in order.tolist():
        if best[i] <= 0:
            break
        rec = d.book.record(i) if d.book else None
        out.append(
            StrongLatent(
                index=i,
                max_act=float(best[i]),
                max_pos=keep[int(where[i])],
                n_active=int(count[i]),
                label=rec["label"] if rec else "",
                frequency=rec.get("frequency") if rec else None,
            )
        )
    return out


@torch.inference_mode()
def sae_latents(run: PromptRun, params: SaeLatentsParams) -> SaeLatentsResult:
    d = saes.for_model(run.lm).get(params.sae)
    acts = latent_acts(run, d)
    vals, idx, fires = top_latents(acts, params.top_k)
    top = [
        [LatentRef(index=i, act=v) for i, v, f in zip(ri, rv, rf, strict=True) if f]
        for ri, rv, rf in zip(idx.tolist(), vals.tolist(), fires.tolist(), strict=True)
    ]
    chosen = acts[:, params.latent].tolist() if params.latent is not None else None
    return SaeLatentsResult(
        sae=d.info,
        tokens=run.token_infos,
        top=top,
        l0=(acts > 0).sum(-1).tolist(),
        latent=params.latent,
        latent_acts=chosen,
        strongest=_strongest(acts, run, d, params.n_strongest),
    )


def check(lm: LoadedModel, params: SaeLatentsParams) -> None:
    d = saes.for_model(lm).get(params.sae)
    if params.latent is not None:
        saes.check_index(d, params.latent)


SAE_LATENTS = Analysis(
    name="sae_latents",
    version=1,
    params=SaeLatentsParams,
    result=SaeLatentsResult,
    fn=sae_latents,
    feature="saes",
    available=saes.availability,
    check=check,
    description="an SAE's strongest latents per token, one latent over the tokens, "
    "and the prompt's strongest latents with labels",
)
