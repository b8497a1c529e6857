"""Unembed without copying ``W_U`` on every forward.

TransformerLens's ``Unembed.forward`` calls ``F.linear(x, W_U.T.contiguous(), b_U)``: a
full copy of the unembedding per call (d_model x d_vocab: 154 MB for gpt2-small). A matmul
on the non-contiguous view computes the same product without the copy.
"""

from __future__ import annotations

import types

import torch
from transformer_lens import HookedTransformer


def _forward(self, residual: torch.Tensor) -> torch.Tensor:
    return torch.addmm(self.b_U, residual.reshape(-1, residual.shape[-1]), self.W_U).reshape(
        *residual.shape[:-1], self.W_U.shape[-1]
    )


def install_fast_unembed(model: HookedTransformer) -> None:
    model.unembed.forward = types.MethodType(_forward, model.unembed)
