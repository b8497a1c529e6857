"""Weights stored in the layout HookedTransformer's forward pass reads them in.

TransformerLens 3.2 keeps attention weights as ``W_Q/W_K/W_V [head, d_model, d_head]``,
``W_O [head, d_head, d_model]`` and the unembedding as ``W_U [d_model, vocab]``, and on every
forward pass rearranges each into the matrix ``F.linear`` takes (``(head d_head) d_model``,
``d_model (head d_head)``, ``W_U.T.contiguous()``): a copy of nearly every weight of the
model per forward pass. On the CPU that copy is most of a short prompt's forward pass
(gpt2-small shape, 16 tokens: 154 of 250 ms, bench/RESULTS.md).

Here each of those parameters keeps its shape and values but is stored as a strided view
of a tensor in the forward pass's own layout, so the rearrangement is a view and
``.contiguous()`` is a no-op: the forward pass copies nothing, computes with the very
matrices it built before (its outputs are equal bit for bit), and the weights take no more
memory. Anything reading the parameters (``model.W_Q``, ``x @ W_U``, FactoredMatrix) sees
the same tensors; only ``.view()`` of one of them would now need ``.reshape()``.
"""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

QKV = ("W_Q", "W_K", "W_V", "_W_K", "_W_V")  # [head, d_model, d_head]; GQA keeps _W_K/_W_V


def _store(param: torch.nn.Parameter | None, order: tuple[int, ...]) -> int:
    """Store `param` as a view, permuted by the inverse of `order`, of its values laid out
    contiguously in `order`; the bytes the forward pass stops copying."""
    if param is None or param.is_meta or param.dim() != len(order):
        return 0
    inverse = tuple(order.index(i) for i in range(len(order)))
    laid = param.data.permute(order)
    if not laid.is_contiguous():
        param.data = laid.contiguous().permute(inverse)
    return param.numel() * param.element_size()


@torch.no_grad()
def forward_layout(model: torch.nn.Module) -> int:
    """Lay out `model`'s attention and unembedding weights for its forward pass (in place;
    see the module's docstring); the bytes per forward pass no longer copied. Models other
    than a plain HookedTransformer (TransformerBridge, 4-bit, split-QKV inputs whose einsum
    reads the weights as they are) are left as they are: 0."""
    cfg = getattr(model, "cfg", None)
    if not isinstance(model, HookedTransformer) or cfg is None or cfg.load_in_4bit:
        return 0
    if cfg.use_split_qkv_input or cfg.use_attn_in:
        return 0
    saved = 0
    for block in model.blocks:
        params = block.attn._parameters
        for name in QKV:
            saved += _store(params.get(name), (0, 2, 1))  # -> (head d_head) d_model
        saved += _store(params.get("W_O"), (2, 0, 1))  # -> d_model (head d_head)
    saved += _store(model.unembed._parameters.get("W_U"), (1, 0))  # W_U.T contiguous
    return saved
