"""Architectures HookedTransformer cannot represent, through TransformerLens's TransformerBridge.

TransformerBridge (TransformerLens 3.x) wraps the Hugging Face model itself instead of
converting its weights, so it covers architectures HookedTransformer has no conversion for
(GPTBigCode/StarCoder, Granite, OLMo-2 directories, ...). In compatibility mode it applies
HookedTransformer's weight processing (fold_ln, centring) and exposes the canonical hook
names (``blocks.L.attn.hook_pattern``, ``blocks.L.hook_resid_post``, ``ln_final.hook_scale``)
and ``W_O`` / ``W_U`` / ``ln_final`` / ``unembed``, which is what the analyses read; the
tests check its numbers against the Hugging Face model on a tiny GPTBigCode.

It builds no n_ctx x n_ctx buffers (Hugging Face makes masks per forward pass), so the
context cap only bounds prompt length and the activation estimate.
"""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformerConfig
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.sources.transformers import map_default_transformer_lens_config
from transformers import AutoModelForCausalLM

from engine import conversion_check as check
from engine import memory
from engine.errors import EngineError

# What needs a HookedTransformer, and why it is not offered on the bridge.
UNAVAILABLE = {
    "transcoders": "circuit-tracer's replacement model is built on a HookedTransformer; this "
    "architecture loaded through TransformerBridge",
    "attribution_graph": "attribution graphs (transcoder and component) need a "
    "HookedTransformer (split q/k/v inputs, circuit-tracer); this architecture loaded through "
    "TransformerBridge",
}


def _n_params(hf) -> int:
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf)
    return sum(p.numel() for p in model.parameters())


def estimate(
    hf, device: str, dtype: torch.dtype, n_ctx: int, budget: memory.Budget = memory.Budget()
) -> memory.MemoryEstimate:
    """The memory estimate for a bridged model: its exact parameter count (built on the meta
    device, nothing allocated) and the activations of a prompt of `n_ctx` tokens."""
    t = map_default_transformer_lens_config(hf)
    shape = HookedTransformerConfig(
        n_layers=t.n_layers, d_model=t.d_model, n_ctx=n_ctx, d_head=t.d_head,
        n_heads=t.n_heads, d_mlp=getattr(t, "d_mlp", 4 * t.d_model), d_vocab=t.d_vocab,
        act_fn="relu", dtype=dtype, positional_embedding_type="rotary",
    )  # fmt: skip
    return memory.estimate(shape, device, params=_n_params(hf), buffers=False, budget=budget)


def _boot(plan, device: str, dtype: torch.dtype) -> TransformerBridge:
    try:
        return TransformerBridge.boot_transformers(plan.ref, device=device, dtype=dtype)
    except Exception as e:  # the bridge's adapters raise many kinds; say which and why
        raise EngineError(
            422,
            "unsupported_architecture",
            f"{plan.display}: HookedTransformer cannot load it ({plan.why_bridge}) and "
            f"TransformerBridge failed too: {type(e).__name__}: {e}",
        ) from None


def _compatible(plan, device: str, dtype: torch.dtype, n_ctx: int) -> tuple[TransformerBridge, str]:
    """The bridge in compatibility mode, with HookedTransformer's weight processing when that
    leaves its outputs as they were (checked on the probe), else without it: (bridge, why the
    processing is off, or "")."""
    model = _boot(plan, device, dtype)
    probe = check.probe(model.cfg.d_vocab, n_ctx).to(device)
    with torch.inference_mode():
        reference = check.logprobs(model(probe))  # the Hugging Face model's own forward
        model.enable_compatibility_mode(disable_warnings=True)
        gap = check.gap(reference, model(probe))
    if gap <= check.tolerance(dtype):
        return model, ""
    del model
    model = _boot(plan, device, dtype)
    model.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    return model, (
        f"TransformerLens's weight processing (fold_ln, centring) changes this architecture's "
        f"outputs ({gap:.3g} nats on a probe), so it is off and the final norm keeps its "
        "weights; DLA reads shares through a weight-free final norm"
    )


def load(plan, *, device: str, dtype: torch.dtype, cap: int, budget=memory.Budget()):
    """(bridge, memory estimate, unavailable features) for `plan`'s local directory."""
    n_ctx = min(cap, plan.model_max_context or cap)
    est = estimate(plan.hf, device, dtype, n_ctx, budget)
    if not est.fits:
        raise EngineError(
            422,
            "model_too_large",
            f"{plan.display} will not fit: {est.summary()}.",
            est.model_dump(),
        )
    model, unprocessed = _compatible(plan, device, dtype, n_ctx)
    model.eval()
    model.cfg.n_ctx = n_ctx  # prompts are checked against the cap
    unavailable = dict(UNAVAILABLE)
    if unprocessed:
        unavailable["dla"] = unprocessed
    return model, est, unavailable
