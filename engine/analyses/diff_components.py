"""Which heads and MLPs changed their contribution to a target: direct logit attribution
(engine/analyses/dla.py) and the head scores (engine/analyses/head_scores.py) of both runs,
and their difference (B - A).

The target is resolved once, on side A (its top prediction at `pos` when none is given), and
attributed on both sides, so A's and B's shares are of the same logit.
"""

from __future__ import annotations

import torch

from engine import targets
from engine.analyses import dla, head_scores
from engine.analyses.base import Analysis
from engine.analyses.diff_common import TOP_CHANGES, pair_info, require_same_shape
from engine.loading import LoadedModel
from engine.pairs import RunPair
from engine.schemas.analyses import DLAParams, DLAResult, HeadScoresParams
from engine.schemas.diff import (
    ComponentChange,
    DiffComponentsParams,
    DiffComponentsResult,
    HeadScoreDiff,
)


def check(lm: LoadedModel, params: DiffComponentsParams) -> None:
    targets.check(lm, params.target)
    targets.check(lm, params.baseline, what="baseline")


def shares(r: DLAResult) -> dict[str, float]:
    """Every component's share of the attributed logit, by name."""
    out = {"embed": r.embed, "pos_embed": r.pos_embed}
    for layer, row in enumerate(r.heads):
        out |= {f"L{layer}H{head}": v for head, v in enumerate(row)}
    for layer, (mlp, bias) in enumerate(zip(r.mlps, r.attn_bias, strict=True)):
        out |= {f"MLP{layer}": mlp, f"L{layer} b_O": bias}
    return out


def top_changes(a: DLAResult, b: DLAResult, n: int = TOP_CHANGES) -> list[ComponentChange]:
    sa, sb = shares(a), shares(b)
    changes = [ComponentChange(name=k, a=sa[k], b=sb[k], delta=sb[k] - sa[k]) for k in sa]
    return sorted(changes, key=lambda c: -abs(c.delta))[:n]


def minus(b: list | None, a: list | None) -> list | None:
    if a is None or b is None:
        return None
    return (torch.tensor(b) - torch.tensor(a)).tolist()


def diff_components(pair: RunPair, params: DiffComponentsParams) -> DiffComponentsResult:
    require_same_shape(pair, "n_layers", "n_heads")
    pos = pair.a.position(params.pos)
    target = (
        int(pair.a.logits[pos].argmax())
        if params.target is None
        else targets.resolve(pair.a.lm, params.target)
    )
    same = DLAParams(pos=pos, target=target, baseline=params.baseline)
    a, b = dla.dla(pair.a, same), dla.dla(pair.b, same)
    hs_a = head_scores.head_scores(pair.a, HeadScoresParams()).scores
    hs_b = head_scores.head_scores(pair.b, HeadScoresParams()).scores
    return DiffComponentsResult(
        **pair_info(pair),
        pos=pos,
        target=a.target,
        baseline=a.baseline,
        metric=a.metric,
        a=a,
        b=b,
        heads_delta=minus(b.heads, a.heads),
        mlps_delta=minus(b.mlps, a.mlps),
        total_delta=b.total - a.total,
        model_value_delta=b.model_value - a.model_value,
        top_changes=top_changes(a, b),
        head_scores=[
            HeadScoreDiff(
                name=sa.name,
                label=sa.label,
                a=sa.values,
                b=sb.values,
                delta=minus(sb.values, sa.values),
            )
            for sa, sb in zip(hs_a, hs_b, strict=True)
        ],
    )


DIFF_COMPONENTS = Analysis(
    name="diff_components",
    version=1,
    params=DiffComponentsParams,
    result=DiffComponentsResult,
    fn=diff_components,
    feature="diff",
    check=check,
    pair=True,
    description="head-score and DLA diffs: each head's and MLP's share of a target on A and B",
)
