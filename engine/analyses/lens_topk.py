"""The logit lens's top-k, chunked over the vocabulary, memoised per prompt run.

``lens_topk`` reads residual streams through ``ln_final`` and the unembedding one chunk of the
vocabulary at a time, keeping a running top-k and a running log-sum-exp, so a 256k-vocab model
never holds ``streams x vocab`` logits (only ``streams x chunk``). The output soft cap
(Gemma-2) is applied as the model applies it.

``lens_window`` answers a position window from blocks of ``BLOCK`` positions computed once per
prompt run (``PromptRun.memo``): moving the window computes only the blocks not seen yet (all
of them in one readout), and a block is always computed whole, so an answer does not depend on
which windows came before.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from engine.run import PromptRun

BLOCK = 4  # positions per memoised block: a window computes at most 2 x 3 extra
VOCAB_CHUNK = 16_384  # vocabulary entries per matmul
TopK = tuple[Int[Tensor, "n k"], Float[Tensor, "n k"], Float[Tensor, "n k"]]


def soft_cap(model: HookedTransformer, logits: Float[Tensor, "... v"]) -> Float[Tensor, "... v"]:
    cap = model.cfg.output_logits_soft_cap
    return cap * torch.tanh(logits / cap) if cap > 0 else logits


@torch.inference_mode()
def lens_topk(
    model: HookedTransformer, resid: Float[Tensor, "n d_model"], k: int, chunk: int = VOCAB_CHUNK
) -> TopK:
    """(ids, probs, logits) of the `k` largest lens logits of each stream in `resid`."""
    x = model.ln_final(resid.to(model.cfg.dtype))
    w_u, b_u = model.W_U, model.b_U
    lse = torch.full((x.shape[0],), -torch.inf, device=x.device)
    best_v = best_i = None
    for c0 in range(0, w_u.shape[-1], chunk):
        logits = soft_cap(model, (x @ w_u[:, c0 : c0 + chunk] + b_u[c0 : c0 + chunk]).float())
        lse = torch.logaddexp(lse, logits.logsumexp(-1))
        v, i = logits.topk(min(k, logits.shape[-1]), dim=-1)
        i = i + c0
        if best_v is not None:
            v, i = torch.cat([best_v, v], -1), torch.cat([best_i, i], -1)
            v, j = v.topk(min(k, v.shape[-1]), dim=-1)
            i = i.gather(-1, j)
        best_v, best_i = v, i
    return best_i, (best_v - lse[:, None]).exp(), best_v


def _blocks(run: PromptRun, hooks: list[str], blocks: list[int], k: int) -> list[TopK]:
    """The lens top-k of each of `blocks`, all read in one ``lens_topk`` call: the
    unembedding is streamed from memory once for the window, not once per block (at 16
    tokens, four blocks: 18 % of the lens's time). A stream's logits do not depend on the other
    streams of the call (a matrix product's rows; tests/test_view_windows.py checks answers
    equal a recompute in another order)."""
    n = len(run.token_ids)
    spans = [range(b * BLOCK, min(n, (b + 1) * BLOCK)) for b in blocks]
    where = torch.tensor([p for span in spans for p in span], device=run.cache[hooks[0]].device)
    resid = torch.stack([run.cache[h][where] for h in hooks])  # [row, pos, d_model]
    rows, pos = resid.shape[:2]
    out = [
        t.reshape(rows, pos, -1).cpu()
        for t in lens_topk(run.lm.model, resid.reshape(rows * pos, -1), k)
    ]
    parts = [t.split([len(span) for span in spans], dim=1) for t in out]
    return [tuple(p[i] for p in parts) for i in range(len(blocks))]  # type: ignore[misc]


def lens_window(run: PromptRun, hooks: list[str], start: int, stop: int, k: int) -> TopK:
    """(ids, probs, logits) ``[row, pos - start, k]`` of the streams `hooks` at [start, stop)."""
    memo = run.memo.setdefault(("lens_topk", tuple(hooks), k), {})
    first, last = start // BLOCK, (stop - 1) // BLOCK
    missing = [b for b in range(first, last + 1) if b not in memo]
    if missing:
        memo.update(zip(missing, _blocks(run, hooks, missing, k), strict=True))
    lo = start - first * BLOCK
    parts = [torch.cat([memo[b][i] for b in range(first, last + 1)], 1) for i in range(3)]
    return tuple(t[:, lo : lo + stop - start] for t in parts)  # type: ignore[return-value]
