"""Check a loaded model against the Hugging Face model it came from, on a probe sequence.

A config mapping that misses a field (a rope theta, a soft cap, a norm offset) or a weight
processing step that does not hold for an architecture (TransformerLens's fold_ln on
TransformerBridge's Gemma-3: 0.49 nats off on a tiny model) leaves a model that runs and
gives wrong numbers. So after loading, the model's next-token log-probabilities on a fixed
probe are compared with the original's; a gap past the tolerance makes the loader take
another path instead of serving wrong numbers. Log-probabilities, since centring the
unembedding shifts every logit of a position by the same amount.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

PROBE_TOKENS = 16
# fp32 conversions agree to ~1e-6; half precision rounds differently on each side.
TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-3}
HALF_TOLERANCE = 0.3


def probe(d_vocab: int, n_ctx: int) -> Int[Tensor, "1 pos"]:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, d_vocab, (1, min(PROBE_TOKENS, n_ctx)), generator=gen)


def logprobs(logits: Float[Tensor, "1 pos vocab"]) -> Float[Tensor, "pos vocab"]:
    return logits[0].detach().float().cpu().log_softmax(-1)


def gap(reference: Float[Tensor, "pos vocab"], logits: Float[Tensor, "1 pos vocab"]) -> float:
    """The largest difference in next-token log-probability between the two."""
    return float((logprobs(logits) - reference).abs().max())


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCE.get(dtype, HALF_TOLERANCE)
