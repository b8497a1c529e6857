"""Per-token diff of two runs: KL(A || B) between their next-token distributions after every
position, and where the top prediction changed.

Side A and side B are two models on one prompt or one model on two prompts of as many tokens
(engine/pairs.py). The full-prompt numbers (KL, top-1 of each side, the rank of A's top in B)
are a few floats a position, kept with A's run for the pair; the top-k lists are answered for
the view's window only, like ``predictions``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from engine.analyses.base import Analysis
from engine.analyses.diff_common import TOP_CHANGES, pair_info
from engine.analyses.predictions import top_predictions
from engine.pairs import RunPair
from engine.schemas.diff import DiffTokensParams, DiffTokensResult, TokenChange
from engine.schemas.windows import clamp_window

CHUNK = 256  # positions per log-softmax: a long prompt on a big vocabulary never holds pos x vocab


@torch.inference_mode()
def kl_per_position(
    logits_a: Float[Tensor, "pos vocab"], logits_b: Float[Tensor, "pos vocab"], chunk: int = CHUNK
) -> Float[Tensor, " pos"]:
    """KL(A || B) = sum_v p_A(v) (log p_A(v) - log p_B(v)) at every position, in nats."""
    out = []
    for s in range(0, logits_a.shape[0], chunk):
        lp_a = logits_a[s : s + chunk].float().log_softmax(-1)
        lp_b = logits_b[s : s + chunk].float().log_softmax(-1)
        out.append((lp_a.exp() * (lp_a - lp_b)).sum(-1))
    return torch.cat(out).clamp_min(0.0)


def rank_of(logits: Float[Tensor, "pos vocab"], ids: Int[Tensor, " pos"]) -> Int[Tensor, " pos"]:
    """The rank of token ``ids[p]`` in ``logits[p]`` at every position (1: the top)."""
    return (logits > logits.gather(-1, ids[:, None])).sum(-1) + 1


def whole_prompt(pair: RunPair) -> dict[str, Tensor]:
    """KL, each side's top-1 and the rank of A's top-1 in B at every position, kept with A's
    run for this B (every window of the view reads them)."""
    key = ("diff_tokens", pair.b.lm.fingerprint, tuple(pair.b.token_ids))
    if key not in pair.a.memo:
        la, lb = pair.a.logits, pair.b.logits
        top_a = la.argmax(-1)
        pair.a.memo[key] = {
            "kl": kl_per_position(la, lb),
            "top_a": top_a,
            "top_b": lb.argmax(-1),
            "rank_in_b": rank_of(lb, top_a),
        }
    return pair.a.memo[key]


def diff_tokens(pair: RunPair, params: DiffTokensParams) -> DiffTokensResult:
    n = len(pair.a.token_ids)
    start, stop = clamp_window(params.start, params.width, n)
    whole = whole_prompt(pair)
    tok = pair.a.lm.model.tokenizer
    top_a = top_predictions(pair.a.logits, tok, params.top_k, start, stop)
    top_b = top_predictions(pair.b.logits, tok, params.top_k, start, stop)
    kl = whole["kl"]
    changes = []
    for pos in kl.topk(min(TOP_CHANGES, n)).indices.tolist():
        (a1,) = top_predictions(pair.a.logits, tok, 1, pos, pos + 1)
        (b1,) = top_predictions(pair.b.logits, tok, 1, pos, pos + 1)
        changes.append(
            TokenChange(
                pos=pos,
                kl=float(kl[pos]),
                top_a=a1[0],
                top_b=b1[0],
                rank_in_b=int(whole["rank_in_b"][pos]),
            )
        )
    return DiffTokensResult(
        **pair_info(pair),
        start=start,
        stop=stop,
        tokens=pair.a.token_infos,
        tokens_b=pair.b.token_infos if pair.kind == "prompts" else None,
        kl=kl.tolist(),
        top1_changed=(whole["top_a"] != whole["top_b"]).tolist(),
        top_a=top_a,
        top_b=top_b,
        rank_in_b=whole["rank_in_b"][start:stop].tolist(),
        top_changes=changes,
        mean_kl=float(kl.mean()),
    )


DIFF_TOKENS = Analysis(
    name="diff_tokens",
    version=1,
    params=DiffTokensParams,
    result=DiffTokensResult,
    fn=diff_tokens,
    feature="diff",
    pair=True,
    description="per-token KL(A || B) and top-prediction changes between two runs",
)
