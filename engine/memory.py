"""How much memory a model needs, from its config alone, and whether that fits here.

Counted (bytes):

- weights: every parameter HookedTransformer holds (its unembedding is a separate matrix
  even when the checkpoint ties it), in the load dtype;
- buffers: each attention layer's causal (or sliding-window) mask, ``n_ctx`` x ``n_ctx``
  booleans, and its rotary sin/cos tables; this is what the context cap bounds (an
  uncapped Llama-3.2-1B would need 16 x 131072^2 bytes of masks, and TransformerLens
  builds each one from a float32 matrix of 131072^2: 64 GiB);
- activations: one ``run_with_cache`` of a prompt as long as the context cap, every hook
  kept (residual streams, q/k/v/z, MLP activations, attention scores and pattern, which
  grow with the square of the length), plus the logits in float32;
- loading: TransformerLens processes the weights (fold_ln, centring) in float32, one
  cloned state dict per step, so the loading peak is about two float32 copies on top of the
  model: measured 14.0 bytes per parameter in bfloat16 and 16.1 in float32 (a Qwen2-0.5B
  shape, 630M parameters, engine/weights.py), i.e. the dtype's bytes + 12.

The need is the larger of the loading peak and weights + buffers + activations; it fits
when that is below the free memory of the device (RAM via psutil, or the free memory of
the GPUs the model is split across).
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch
from transformer_lens import HookedTransformerConfig

from engine.errors import EngineError
from engine.schemas.model import MemoryInfo

GiB = 1 << 30
LOAD_EXTRA_BYTES_PER_PARAM = 12  # float32 processing copies while loading (measured, above)
SLOW_ON_CPU_PARAMS = 300_000_000  # past this a forward pass on CPU takes seconds


def _bytes_per(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits // 8


def n_params(cfg: HookedTransformerConfig) -> int:
    d, n_kv = cfg.d_model, cfg.n_key_value_heads or cfg.n_heads
    attn = 2 * cfg.n_heads * cfg.d_head * d + 2 * n_kv * cfg.d_head * d
    mlp = (3 if cfg.gated_mlp else 2) * d * (cfg.d_mlp or 0) * (cfg.num_experts or 1)
    pos = cfg.n_ctx * d if cfg.positional_embedding_type in ("standard", "shortformer") else 0
    return cfg.n_layers * (attn + mlp) + 2 * cfg.d_vocab * d + pos


@dataclass(frozen=True)
class Budget:
    """What a new model may use when others are loaded (engine/service.py ``Engine.budget``):
    `available` replaces the device's free memory when set (the engine's memory limit), and
    `reserved` bytes of it are held by the models already loaded."""

    available: int | None = None
    reserved: int = 0


def held_bytes(est: MemoryInfo) -> int:
    """What a loaded model holds at most: its weights, buffers and its prompt runs."""
    return est.weights_bytes + est.buffers_bytes + est.activations_bytes


class MemoryEstimate(MemoryInfo):
    """The fields the API answers (``MemoryInfo``), and a sentence for messages."""

    def summary(self) -> str:
        return (
            f"{self.params / 1e6:,.0f}M parameters: needs about {self.needed_bytes / GiB:.2f} GiB "
            f"(weights {self.weights_bytes / GiB:.2f}, masks and rotary tables "
            f"{self.buffers_bytes / GiB:.2f}, activations of a {self.n_ctx}-token prompt "
            f"{self.activations_bytes / GiB:.2f}, loading peak {self.load_peak_bytes / GiB:.2f})"
            f"; {self.available_bytes / GiB:.2f} GiB free on {self.device}"
            + (
                f" once the {self.reserved_bytes / GiB:.2f} GiB held by the models already "
                "loaded are counted"
                if self.reserved_bytes
                else ""
            )
        )


def activation_bytes(cfg: HookedTransformerConfig, n_tokens: int) -> int:
    """One ``run_with_cache`` of `n_tokens` tokens, every hook kept, plus float32 logits."""
    d, heads = cfg.d_model, cfg.n_heads * cfg.d_head
    per_token = 10 * d + 6 * heads + 3 * (cfg.d_mlp or 0)
    per_layer = n_tokens * per_token + 2 * cfg.n_heads * n_tokens * n_tokens
    logits = n_tokens * cfg.d_vocab * 4 * 2
    return cfg.n_layers * per_layer * _bytes_per(cfg.dtype) + logits


def buffer_bytes(cfg: HookedTransformerConfig) -> int:
    rotary = 0
    if cfg.positional_embedding_type == "rotary":
        rotary = 2 * cfg.n_ctx * (cfg.rotary_dim or cfg.d_head) * _bytes_per(cfg.dtype)
    return cfg.n_layers * (cfg.n_ctx * cfg.n_ctx + rotary) + 4 * cfg.n_ctx * cfg.n_ctx


def available_bytes(device: str, n_devices: int = 1) -> int:
    if device.startswith("cuda") and torch.cuda.is_available():
        first = torch.device(device).index or 0
        return sum(torch.cuda.mem_get_info(first + i)[0] for i in range(n_devices))
    return psutil.virtual_memory().available


def estimate(
    cfg: HookedTransformerConfig,
    device: str,
    *,
    params: int | None = None,
    buffers: bool = True,
    available: int | None = None,
    budget: Budget = Budget(),
) -> MemoryEstimate:
    """The estimate for `cfg` at its n_ctx; `params` when known exactly (else counted from
    cfg), `buffers` False for a model that builds no masks up front (TransformerBridge);
    `budget`: the memory other loaded models leave it."""
    params = n_params(cfg) if params is None else params
    weights = params * _bytes_per(cfg.dtype)
    acts = activation_bytes(cfg, cfg.n_ctx)
    buf = buffer_bytes(cfg) if buffers else 0
    load_peak = weights + params * LOAD_EXTRA_BYTES_PER_PARAM + buf
    needed = max(load_peak, weights + buf + acts)
    if available is None:
        available = budget.available
    free = available_bytes(device, cfg.n_devices) if available is None else available
    free = max(0, free - budget.reserved)
    return MemoryEstimate(
        params=params,
        weights_bytes=weights,
        buffers_bytes=buf,
        activations_bytes=acts,
        load_peak_bytes=load_peak,
        needed_bytes=needed,
        available_bytes=free,
        device=device,
        n_ctx=cfg.n_ctx,
        fits=needed <= free,
        reserved_bytes=budget.reserved,
        slow_on_cpu=device == "cpu" and params > SLOW_ON_CPU_PARAMS,
    )


def largest_context_that_fits(cfg: HookedTransformerConfig, free: int) -> int:
    """The longest context cap (a multiple of 128, at least 128) whose estimate fits, or 0."""
    lo, hi = 0, cfg.n_ctx
    while hi - lo > 128:
        mid = (lo + hi) // 2 // 128 * 128 or 128
        trial = HookedTransformerConfig.from_dict({**cfg.to_dict(), "n_ctx": mid})
        if estimate(trial, "cpu", available=free).fits:
            lo = mid
        else:
            hi = mid
    return lo


def refuse_if_too_large(est: MemoryEstimate, cfg: HookedTransformerConfig, name: str) -> None:
    if est.fits:
        return
    shorter = largest_context_that_fits(cfg, est.available_bytes)
    hint = (
        f" A context cap of {shorter} tokens would fit (max_context / --max-context)."
        if shorter
        else " Even its weights do not fit: use a smaller dtype (bfloat16 halves them), "
        "another device, or split it across GPUs (n_devices)."
    )
    if est.reserved_bytes:
        hint += " Or unload a model from another slot (DELETE /models/{slot}) to free its memory."
    raise EngineError(
        422,
        "model_too_large",
        f"{name} will not fit: {est.summary()}.{hint}",
        est.model_dump(),
    )
