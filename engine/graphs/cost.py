"""What an attribution graph will cost, measured before the job, and refusal of what cannot fit.

Counts come from one forward pass with the transcoders' encoders (the active latents, BOS
excluded as circuit-tracer does); memory is the sum of circuit-tracer's big buffers:

- the attribution rows: ``(F + L) x T`` where ``T = A + (n_layers + 1) * P + L`` columns;
- the pruned square ``N x N`` (``N = F + (n_layers + 1) * P + L``), about 4 copies while
  ``prune_graph`` normalises it and iterates influence;
- the backward graph of one batch of ``batch_size`` copies of the prompt;
- the replacement model's weights when it is not built yet (a copy of the model + transcoders).

``A`` active latents, ``F`` latent nodes attributed (the budget), ``L`` logits, ``P`` tokens.
"""

from __future__ import annotations

import math

import psutil
import torch
from jaxtyping import Int
from torch import Tensor

from engine.graphs.schemas import GraphCost, GraphParams

HEADROOM = 0.8  # refuse past this share of the free memory
ACTIVATIONS_PER_LAYER = 16  # d_model-sized tensors kept per layer and token for backward


@torch.no_grad()
def count_active_latents(rm, ids: Int[Tensor, " pos"]) -> int:
    """Latents active on the prompt over all layers, BOS position excluded."""
    hook = rm.feature_input_hook
    names = {f"blocks.{layer}.{hook}" for layer in range(rm.cfg.n_layers)}
    _, cache = rm.run_with_cache(ids[None], names_filter=lambda n: n in names)
    inputs = torch.stack([cache[f"blocks.{layer}.{hook}"][0] for layer in range(rm.cfg.n_layers)])
    acts = rm.transcoders.encode(inputs)
    acts[:, 0] = 0
    return int((acts > 0).sum())


def available_bytes(device: str) -> int:
    if device.startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    return int(psutil.virtual_memory().available)


def estimate(
    p: GraphParams,
    *,
    n_tokens: int,
    active: int,
    cfg,
    device: str,
    weights_bytes: int = 0,
    dtype_bytes: int = 4,
) -> GraphCost:
    """The cost of attributing `n_tokens` tokens with `active` active latents."""
    n_logits = p.max_n_logits if p.target is None else 1
    feats = min(p.max_feature_nodes, active)
    fixed = (cfg.n_layers + 1) * n_tokens + n_logits
    total, n_nodes = active + fixed, feats + fixed
    rows = (feats + n_logits) * total * 4
    square = 4 * n_nodes * n_nodes * 4
    per_token = cfg.d_model * ACTIVATIONS_PER_LAYER + 3 * cfg.n_heads * n_tokens
    backward = p.batch_size * n_tokens * cfg.n_layers * per_token * dtype_bytes
    buffer = p.batch_size * total * 4
    memory = rows + square + backward + buffer + weights_bytes
    free = available_bytes(device)
    fits = memory <= HEADROOM * free
    reason = ""
    if not fits:
        reason = (
            f"This graph needs about {_gib(memory)} but {device} has {_gib(free)} free: "
            f"shorten the prompt ({n_tokens} tokens), lower the node budget ({feats}) "
            f"or the batch size ({p.batch_size})."
        )
    return GraphCost(
        n_tokens=n_tokens,
        active_latents=active,
        latent_nodes=feats,
        total_nodes=n_nodes,
        batches=math.ceil(feats / p.batch_size) + math.ceil(n_logits / p.batch_size),
        memory_bytes=int(memory),
        available_bytes=free,
        device=device,
        fits=fits,
        reason=reason,
    )


def weights_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"
