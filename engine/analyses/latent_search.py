"""Find latents by their label text, or by a token they fire on (``' Paris'``).

By label: latents whose label contains every query word (case-insensitive), then those with
some of them, ranked by the share of words matched. By token: latents whose example windows
have the token where the latent is active, ranked by the summed activation on it; the
prompt's own activations on that token count too, so an SAE without examples can be searched.
"""

from __future__ import annotations

import torch

from engine import saes, targets
from engine.analyses.base import Analysis
from engine.analyses.sae_latents import latent_acts
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.saes import LatentSearchParams, LatentSearchResult, SearchBy, SearchHit


def _by_label(book: saes.LatentBook, query: str) -> list[tuple[int, float]]:
    words = query.lower().split()
    hits = []
    for rec in book.latents:
        label = (rec.get("label") or "").lower()
        share = sum(w in label for w in words) / len(words)
        if share > 0:
            hits.append((rec["index"], share))
    return hits


def _by_token(book: saes.LatentBook | None, run: PromptRun, d, token: int) -> dict[int, float]:
    score: dict[int, float] = {}
    for rec in book.latents if book else []:
        s = sum(
            a
            for ex in rec.get("examples", [])
            for t, a in zip(ex["tokens"], ex["acts"], strict=False)
            if t == token
        )
        if s > 0:
            score[rec["index"]] = s
    here = [p for p, t in enumerate(run.token_ids) if t == token]
    if here:
        acts = latent_acts(run, d)[here].sum(0)
        for i in torch.nonzero(acts > 0).flatten().tolist():
            score[i] = score.get(i, 0.0) + float(acts[i])
    return score


def latent_search(run: PromptRun, params: LatentSearchParams) -> LatentSearchResult:
    d = saes.for_model(run.lm).get(params.sae)
    book = d.examples(params.examples)
    token = None
    if params.by == SearchBy.label:
        scored = _by_label(book, params.query) if book else []
        over = f"labels of {book.over}" if book else "no labels for this SAE"
    else:
        token_id = targets.resolve(run.lm, params.query, what="token")
        token = targets.token_out(run.lm, token_id)
        scored = list(_by_token(book, run, d, token_id).items())
        over = (f"{book.over} and " if book else "") + "this prompt"
    scored.sort(key=lambda x: (-x[1], x[0]))
    hits = []
    for i, s in scored[: params.limit]:
        rec = book.record(i) if book else None
        hits.append(
            SearchHit(
                index=i,
                label=(rec or {}).get("label", ""),
                score=round(s, 4),
                max_act=(rec or {}).get("max_act"),
            )
        )
    return LatentSearchResult(by=params.by, query=params.query, token=token, over=over, hits=hits)


def check(lm: LoadedModel, params: LatentSearchParams) -> None:
    d = saes.for_model(lm).get(params.sae)
    d.examples(params.examples)
    if params.by == SearchBy.token:
        targets.resolve(lm, params.query, what="token")


LATENT_SEARCH = Analysis(
    name="latent_search",
    version=1,
    params=LatentSearchParams,
    result=LatentSearchResult,
    fn=latent_search,
    feature="saes",
    available=saes.availability,
    check=check,
    description="latents of an SAE by label text or by a token they fire on",
)
