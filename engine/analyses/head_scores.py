"""Scores of every head on this prompt: what kind of head it behaves like here.

Each score is a mean over query positions ``q >= 1`` (the first row of a causal pattern is
always all on position 0, so it says nothing) of one number per query row:

- ``prev_token``: attention to ``q - 1``.
- ``bos``: attention to position 0 (the BOS token when the prompt has one: an attention sink).
- ``duplicate``: attention to earlier occurrences of the token at ``q``.
- ``induction``: attention to the token right after an earlier occurrence of the token at
  ``q`` (TransformerLens's ``head_detector`` induction pattern).
- ``entropy``: entropy of the query row, in nats.

``duplicate`` and ``induction`` average only over the rows that have an earlier occurrence;
when no token repeats they are None with a reason.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from engine.analyses import Analysis, register
from engine.run import PromptRun
from engine.schemas.views import HeadScore, HeadScoresParams, HeadScoresResult

Patterns = Float[Tensor, "layer head q k"]
Mask = Bool[Tensor, "q k"]

ABOUT = {
    "prev_token": ("Previous token", "mean attention to the position before"),
    "bos": ("BOS (sink)", "mean attention to position 0"),
    "duplicate": ("Duplicate token", "attention to earlier copies of the current token"),
    "induction": ("Induction", "attention to the token after an earlier copy of the current one"),
    "entropy": ("Entropy (nats)", "mean entropy of each query's attention"),
}


def repeat_masks(ids: list[int]) -> tuple[Mask, Mask]:
    """(duplicate, induction): ``dup[q, k]`` if ``k < q`` holds the token at ``q``;
    ``ind[q, k]`` if ``k <= q`` and ``k - 1`` holds it (the token that followed it)."""
    t = torch.tensor(ids)
    n = len(ids)
    same = t[:, None] == t[None, :]
    dup = same & torch.ones(n, n, dtype=torch.bool).tril(-1)
    ind = torch.zeros(n, n, dtype=torch.bool)
    ind[:, 1:] = dup[:, :-1]
    return dup, ind & torch.ones(n, n, dtype=torch.bool).tril()


def _masked_mean(patterns: Patterns, mask: Mask, name: str) -> HeadScore:
    rows = mask.any(-1)
    rows[0] = False
    label, about = ABOUT[name]
    if not rows.any():
        why = "no token in the prompt repeats an earlier one"
        return HeadScore(
            name=name, label=label, description=about, values=None, n_queries=0, reason=why
        )
    per_row = (patterns * mask.to(patterns)).sum(-1)[..., rows]
    values = per_row.mean(-1).tolist()
    return HeadScore(
        name=name, label=label, description=about, values=values, n_queries=int(rows.sum())
    )


def _row_score(name: str, per_row: Float[Tensor, "layer head q"]) -> HeadScore:
    label, about = ABOUT[name]
    return HeadScore(
        name=name,
        label=label,
        description=about,
        values=per_row.mean(-1).tolist(),
        n_queries=per_row.shape[-1],
    )


def scores_of(patterns: Patterns, ids: list[int]) -> list[HeadScore]:
    n = len(ids)
    if n < 2:
        why = "the prompt has one token: every head attends to it alone"
        return [
            HeadScore(name=k, label=v[0], description=v[1], values=None, n_queries=0, reason=why)
            for k, v in ABOUT.items()
        ]
    q = torch.arange(1, n)
    rows = patterns[..., 1:, :]
    dup, ind = repeat_masks(ids)
    return [
        _row_score("prev_token", patterns[..., q, q - 1]),
        _row_score("bos", rows[..., 0]),
        _masked_mean(patterns, dup.to(patterns.device), "duplicate"),
        _masked_mean(patterns, ind.to(patterns.device), "induction"),
        _row_score("entropy", -torch.xlogy(rows, rows).sum(-1)),
    ]


def stack_layers(per_layer: list[list[HeadScore]]) -> list[HeadScore]:
    """Each score's ``[1][head]`` values of every layer, stacked into ``[layer][head]``."""
    out = []
    for scores in zip(*per_layer, strict=True):
        first = scores[0]
        values = None if first.values is None else [v for s in scores for v in s.values]
        out.append(first.model_copy(update={"values": values}))
    return out


def head_scores(run: PromptRun, params: HeadScoresParams) -> HeadScoresResult:
    """Scored one layer at a time: the stacked patterns of a long prompt on a real model
    (layers x heads x pos x pos) would not fit in memory."""
    cfg = run.lm.model.cfg
    per_layer = [
        scores_of(run.cache["pattern", layer][None].float(), run.token_ids)
        for layer in range(cfg.n_layers)
    ]
    return HeadScoresResult(
        tokens=run.token_infos,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        scores=stack_layers(per_layer),
    )


register(
    Analysis(
        name="head_scores",
        version=1,
        params=HeadScoresParams,
        result=HeadScoresResult,
        fn=head_scores,
        description="per-head previous-token, BOS, duplicate, induction and entropy scores",
    )
)
