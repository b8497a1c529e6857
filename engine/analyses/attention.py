"""One head's attention pattern on a prompt: the window on screen and an overview.

The answer is view-sized at any prompt length: the ``[start, stop)`` block of the pattern
(queries and keys both in the window; causal, so every key a query in the window can see from
inside it), each window query's attention to the keys before the window, and the whole
pattern max-pooled to at most ``overview`` x ``overview`` cells for navigation, all float16.
The pattern comes from the prompt's run (engine/run.py), so moving the window slices it
again without a forward pass.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from engine.analyses import Analysis, register
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.analyses import AttentionParams, AttentionResult
from engine.schemas.arrays import pack
from engine.schemas.windows import clamp_window
from engine.validation import check_index


def check(lm: LoadedModel, params: AttentionParams) -> None:
    check_index("layer", params.layer, lm.n_layers)
    check_index("head", params.head, lm.n_heads)


def overview_stride(n: int, size: int) -> int:
    """Positions per overview cell so that `n` positions fit in `size` cells."""
    return max(1, math.ceil(n / size))


def overview(
    pattern: Float[Tensor, "... q k"], size: int
) -> tuple[Float[Tensor, "... oq ok"], int]:
    """The max of `pattern` over stride x stride blocks (the last ones cut short), and the
    stride: at most `size` x `size` cells."""
    stride = overview_stride(pattern.shape[-1], size)
    flat = pattern.float().reshape(-1, 1, *pattern.shape[-2:])
    pooled = F.max_pool2d(flat, stride, stride, ceil_mode=True)
    return pooled.reshape(*pattern.shape[:-2], *pooled.shape[-2:]), stride


def window_block(
    pattern: Float[Tensor, "... q k"], start: int, stop: int
) -> tuple[Float[Tensor, "... w w"], Float[Tensor, "... w"]]:
    """The [start, stop) x [start, stop) block, and each query's attention before start."""
    rows = pattern[..., start:stop, :]
    return rows[..., start:stop], rows[..., :start].float().sum(-1)


def attention_pattern(run: PromptRun, params: AttentionParams) -> AttentionResult:
    pattern = run.cache["pattern", params.layer][params.head]  # [query, key]
    start, stop = clamp_window(params.start, params.width, len(run.token_ids))
    block, before = window_block(pattern, start, stop)
    pooled, stride = overview(pattern, params.overview)
    return AttentionResult(
        layer=params.layer,
        head=params.head,
        n_tokens=len(run.token_ids),
        start=start,
        stop=stop,
        tokens=[t.text for t in run.token_infos[start:stop]],
        pattern=pack(block),
        before=pack(before),
        overview=pack(pooled),
        overview_stride=stride,
    )


register(
    Analysis(
        name="attention_pattern",
        version=2,
        params=AttentionParams,
        result=AttentionResult,
        fn=attention_pattern,
        check=check,
        description="one head's attention pattern in a position window, and a max-pooled "
        "overview (float16)",
    )
)
