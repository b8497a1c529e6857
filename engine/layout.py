"""A HookedTransformer's forward pass without a copy of its weights on every call.

TransformerLens 3.2 keeps attention weights as ``W_Q/W_K/W_V [head, d_model, d_head]`` and
``W_O [head, d_head, d_model]`` and the unembedding as ``W_U [d_model, vocab]``; on every
forward pass it rearranges each attention weight into the matrix ``F.linear`` takes
(``(head d_head) d_model``, ``d_model (head d_head)``) and unembeds with
``F.linear(x, W_U.T.contiguous(), b_U)``: a copy of nearly every weight of the model per
forward pass. On the CPU those copies are most of a short prompt's forward pass (gpt2-small
shape, 16 tokens: 154 of 250 ms, bench/RESULTS.md).

- **Attention weights** keep their shapes and values but are stored as strided views of a
  tensor in the forward pass's own layout, so the rearrangement is a view and
  ``.contiguous()`` a no-op: the attention computes with the very matrices it built before
  (equal bit for bit), and the weights take no more memory. Anything reading them
  (``model.W_Q``, FactoredMatrix) sees the same tensors; only ``.view()`` of one of them
  would now need ``.reshape()``.
- **The unembedding** keeps ``W_U`` as it is (contiguous ``[d_model, vocab]``: what the
  lens and attribution products read, and for some row counts a third faster than its
  transpose on this CPU's BLAS) and unembeds with one ``addmm`` on ``W_U`` itself, through
  ``unembed.hook_in`` and ``unembed.hook_out`` as TransformerLens does (so hooks there
  fire as before; the logits can differ from ``F.linear`` on the copy in a last bit).
"""

from __future__ import annotations

import types

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.components import Unembed

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


def _unembed_forward(
    self: Unembed, residual: Float[Tensor, "... d_model"]
) -> Float[Tensor, "... d_vocab_out"]:
    residual = self.hook_in(residual)
    flat = residual.reshape(-1, residual.shape[-1])
    logits = torch.addmm(self.b_U, flat, self.W_U)
    return self.hook_out(logits.reshape(*residual.shape[:-1], self.W_U.shape[-1]))


@torch.no_grad()
def forward_layout(model: torch.nn.Module) -> int:
    """Make `model`'s forward pass copy no weight (in place; see the module's docstring); the
    bytes per forward pass no longer copied. Models other than a plain HookedTransformer
    (TransformerBridge, 4-bit) are left as they are: 0. With split-QKV inputs (an einsum that
    reads the weights as they are) the attention weights are left as they are."""
    cfg = getattr(model, "cfg", None)
    if not isinstance(model, HookedTransformer) or cfg is None or cfg.load_in_4bit:
        return 0
    saved = 0
    if not (cfg.use_split_qkv_input or cfg.use_attn_in):
        for block in model.blocks:
            params = block.attn._parameters
            for name in QKV:
                saved += _store(params.get(name), (0, 2, 1))  # -> (head d_head) d_model
            saved += _store(params.get("W_O"), (2, 0, 1))  # -> d_model (head d_head)
    if isinstance(model.unembed, Unembed):
        model.unembed.forward = types.MethodType(_unembed_forward, model.unembed)
        saved += model.unembed.W_U.numel() * model.unembed.W_U.element_size()
    return saved
