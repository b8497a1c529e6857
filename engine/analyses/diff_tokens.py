"""Per-token diff of two runs: KL(A || B) between their next-token distributions after every
position, and where the top prediction changed.

Side A and side B are two models on one prompt or one model on two prompts of as many tokens
(engine/pairs.py). The whole prompt's numbers (KL, each side's top-1) are kept with A's run
for the pair; the top-k lists and ranks are answered for the view's window (and the largest
changes) only, like ``predictions``.
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

# logits per chunk of positions (1 MB of float32): its temporaries stay in the CPU's caches
# and are reused, where whole [pos, vocab] temporaries are fresh memory each time (256 x 50257:
# 62 ms in chunks of 4 rows, 138 ms at once)
CHUNK = 1 << 18


@torch.inference_mode()
def kl_and_top1(
    logits_a: Float[Tensor, "pos vocab"], logits_b: Float[Tensor, "pos vocab"], chunk: int = CHUNK
) -> tuple[Float[Tensor, " pos"], Int[Tensor, " pos"], Int[Tensor, " pos"]]:
    """(KL(A || B) in nats, A's top-1, B's top-1) at every position.

    KL(A || B) = sum_v p_A(v) (log p_A(v) - log p_B(v)); with log p = logit - logsumexp and
    sum_v p_A(v) = 1 it is sum_v p_A(v) (a_v - b_v) - lse_A + lse_B: the maxima that keep the
    exponentials finite are the top-1 tokens, so one pass over the vocabulary gives all three."""
    kl, top_a, top_b = [], [], []
    rows = max(1, chunk // logits_a.shape[-1])
    for s in range(0, logits_a.shape[0], rows):
        a = logits_a[s : s + rows].float()
        b = logits_b[s : s + rows].to(a.device, torch.float32)  # B may live on another device
        max_a, arg_a = a.max(-1)
        max_b, arg_b = b.max(-1)
        e_a = (a - max_a[:, None]).exp_()  # p_A * sum_a
        sum_a = e_a.sum(-1)
        lse_a = max_a + sum_a.log()
        lse_b = max_b + (b - max_b[:, None]).exp_().sum(-1).log()
        kl.append(((a - b).mul_(e_a)).sum(-1) / sum_a - lse_a + lse_b)
        top_a.append(arg_a)
        top_b.append(arg_b)
    return torch.cat(kl).clamp_min(0.0), torch.cat(top_a), torch.cat(top_b)


def rank_of(logits: Float[Tensor, "n vocab"], ids: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """The rank of token ``ids[i]`` in ``logits[i]`` for each row (1: the top)."""
    return (logits > logits.gather(-1, ids[:, None])).sum(-1) + 1


def whole_prompt(pair: RunPair) -> dict[str, Tensor]:
    """KL and each side's top-1 at every position (the strip), kept with A's run for this B:
    every window of the view reads them."""
    key = ("diff_tokens", pair.b.lm.fingerprint, tuple(pair.b.token_ids))
    if key not in pair.a.memo:
        kl, top_a, top_b = kl_and_top1(pair.a.logits, pair.b.logits)
        pair.a.memo[key] = {"kl": kl, "top_a": top_a, "top_b": top_b.to(top_a.device)}
    return pair.a.memo[key]


def diff_tokens(pair: RunPair, params: DiffTokensParams) -> DiffTokensResult:
    n = len(pair.a.token_ids)
    start, stop = clamp_window(params.start, params.width, n)
    whole = whole_prompt(pair)
    tok = pair.a.lm.model.tokenizer
    top_a = top_predictions(pair.a.logits, tok, params.top_k, start, stop)
    top_b = top_predictions(pair.b.logits, tok, params.top_k, start, stop)
    kl = whole["kl"]
    largest = kl.topk(min(TOP_CHANGES, n)).indices
    rows = torch.cat([torch.arange(start, stop, device=kl.device), largest])
    on_b = pair.b.logits.device
    ranks = rank_of(
        pair.b.logits[rows.to(on_b)], whole["top_a"][rows].to(on_b)
    ).tolist()  # the window's, then
    rank_in_b = dict(zip(rows.tolist(), ranks, strict=True))  # the largest changes'
    at = largest.tolist()
    top1_a = top_predictions(pair.a.logits[largest], tok, 1)  # [change][1]
    top1_b = top_predictions(pair.b.logits[largest.to(on_b)], tok, 1)
    changes = [
        TokenChange(pos=pos, kl=float(kl[pos]), top_a=a[0], top_b=b[0], rank_in_b=rank_in_b[pos])
        for pos, a, b in zip(at, top1_a, top1_b, strict=True)
    ]
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
        rank_in_b=ranks[: stop - start],
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
    light_b=True,
    description="per-token KL(A || B) and top-prediction changes between two runs",
)
