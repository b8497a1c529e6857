"""Where in depth two runs part: the residual-stream difference at every layer, and what the
difference says through the unembedding.

Rows are ``resid_pre`` of every block (block 0's is the embedding) and the last
``resid_post`` (what ln_final and the unembedding read). For each row and position of the
window: ``|resid_B - resid_A|`` and ``|resid_A|`` (its scale). At one position the logit lens
of the difference: ``(resid_B - resid_A) @ W_U`` with side A's unembedding, WITHOUT ln_final
(a difference has no scale of its own to normalise; ln_final's weights are folded into W_U on
a HookedTransformer) and without b_U (it cancels in a difference): the tokens the change
pushes up and down, in logit units per unit of A's final scale.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from engine.analyses.base import Analysis
from engine.analyses.diff_common import pair_info, require_same_shape
from engine.pairs import RunPair
from engine.schemas.diff import DiffResidParams, DiffResidResult, DiffToken
from engine.schemas.windows import clamp_window


def resid_hooks(n_layers: int) -> list[str]:
    """resid_pre of every block, then the last resid_post, input first."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [
        f"blocks.{n_layers - 1}.hook_resid_post"
    ]


def resid_stack(
    cache, hooks: list[str], start: int, stop: int, device: torch.device
) -> Float[Tensor, "row pos d"]:
    """The streams of `hooks` at positions [start, stop), in float32 on `device` (a model
    split across GPUs, or side B on another device than A, keeps them elsewhere)."""
    return torch.stack([cache[h][start:stop].to(device, torch.float32) for h in hooks])


@torch.inference_mode()
def diff_lens(
    model: HookedTransformer, diff: Float[Tensor, "row d_model"], k: int
) -> tuple[
    Int[Tensor, "row k"], Float[Tensor, "row k"], Int[Tensor, "row k"], Float[Tensor, "row k"]
]:
    """(ids, values) of the `k` tokens `diff @ W_U` raises most, then of the `k` it lowers
    most (most negative first)."""
    scores = diff.to(model.W_U.dtype) @ model.W_U  # [row, vocab]; no ln_final, no b_U
    up = scores.float().topk(k, dim=-1)
    down = (-scores.float()).topk(k, dim=-1)
    return up.indices, up.values, down.indices, -down.values


def diff_resid(pair: RunPair, params: DiffResidParams) -> DiffResidResult:
    require_same_shape(pair, "n_layers", "d_model")
    lm = pair.a.lm
    n_layers, n = lm.n_layers, len(pair.a.token_ids)
    pos = pair.a.position(params.pos)
    start, stop = clamp_window(params.start, params.width, n)
    hooks = resid_hooks(n_layers)
    on = lm.model.W_U.device  # the lens reads A's unembedding
    ca = {h: pair.a.act(h) for h in hooks}
    cb = {h: pair.b.act(h) for h in hooks}  # B: its light run's streams, unless it ran in full
    a = resid_stack(ca, hooks, start, stop, on)
    diff = resid_stack(cb, hooks, start, stop, on) - a
    at = (resid_stack(cb, hooks, pos, pos + 1, on) - resid_stack(ca, hooks, pos, pos + 1, on))[:, 0]
    k = min(params.top_k, lm.model.cfg.d_vocab)
    up_i, up_v, down_i, down_v = diff_lens(lm.model, at, k)
    tok = lm.model.tokenizer

    def tokens(ids: Tensor, values: Tensor) -> list[list[DiffToken]]:
        return [
            [
                DiffToken(id=int(i), text=tok.decode([int(i)]), value=float(v))
                for i, v in zip(row_i, row_v, strict=True)
            ]
            for row_i, row_v in zip(ids, values, strict=True)
        ]

    return DiffResidResult(
        **pair_info(pair),
        start=start,
        stop=stop,
        tokens=pair.a.token_infos[start:stop],
        rows=[f"L{layer} pre" for layer in range(n_layers)] + [f"L{n_layers - 1} post"],
        row_layers=list(range(n_layers)) + [n_layers - 1],
        norm=diff.norm(dim=-1).tolist(),
        norm_a=a.norm(dim=-1).tolist(),
        pos=pos,
        lens_up=tokens(up_i, up_v),
        lens_down=tokens(down_i, down_v),
    )


DIFF_RESID = Analysis(
    name="diff_resid",
    version=1,
    params=DiffResidParams,
    result=DiffResidResult,
    fn=diff_resid,
    feature="diff",
    pair=True,
    light_b=True,
    description="per-layer residual-stream difference norms and the logit lens of the difference",
)
