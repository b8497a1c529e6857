"""Unembed without copying ``W_U`` on every forward, its hook points kept.

TransformerLens's ``Unembed.forward`` calls ``F.linear(x, W_U.T.contiguous(), b_U)``: a
full copy of the unembedding per call (d_model x d_vocab: 154 MB for gpt2-small), which a
generation step (one position) pays in full. One ``addmm`` on ``W_U`` itself computes the same
product without the copy (bench/bench_unembed.py measures it). The forward still runs
through ``unembed.hook_in`` and ``unembed.hook_out``, so hooks there fire as in TransformerLens.
"""

from __future__ import annotations

import types

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.components import Unembed


def _forward(
    self: Unembed, residual: Float[Tensor, "... d_model"]
) -> Float[Tensor, "... d_vocab_out"]:
    residual = self.hook_in(residual)
    flat = residual.reshape(-1, residual.shape[-1])
    logits = torch.addmm(self.b_U, flat, self.W_U)
    return self.hook_out(logits.reshape(*residual.shape[:-1], self.W_U.shape[-1]))


def speed_up(unembed: Unembed) -> Unembed:
    """`unembed`, its forward replaced by the one above."""
    unembed.forward = types.MethodType(_forward, unembed)
    return unembed


def install_fast_unembed(model: HookedTransformer) -> None:
    speed_up(model.unembed)
