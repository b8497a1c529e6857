"""The organism's transcoders in circuit-tracer's replacement model, and how well they stand in.

Loading and building live in ``engine.graphs.replacement`` (the engine uses them for
attribution graphs); they are re-exported here.

The replacement model is circuit-tracer's ``TransformerLensReplacementModel`` built with
``ReplacementModel.from_config`` from the config and processed weights of the model that
``engine.loading.load_model`` returns (fold_ln etc.), so its ``mlp.hook_in`` /
``mlp.hook_out`` carry what the transcoders were trained on. Prompts given to it as token
ids must start with BOS.

``replacement_metrics`` measures how well the transcoders stand in for the MLPs: per-layer
FVU and L0 on the model's own MLP inputs, and, with every MLP replaced by its transcoder
(no error term), top-1 next-token agreement, KL(model || replacement) and cross-entropy.
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor

from engine.graphs.replacement import build_replacement_model, load_transcoder_set
from organism.dict_data import content_mask
from organism.dict_metrics import Moments, batches, recovered

__all__ = ["build_replacement_model", "load_transcoder_set", "replacement_metrics"]


def _replace_hooks(rm, mask: Tensor) -> list:
    """Hooks that swap every MLP's output for its transcoder's at `mask` positions."""
    inputs: dict[int, Tensor] = {}

    def keep(act, hook, layer):
        inputs[layer] = act

    def swap(act, hook, layer):
        out = act.clone()
        out[mask] = rm.transcoders[layer](inputs[layer][mask])
        return out

    hooks = []
    for layer in range(rm.cfg.n_layers):
        hooks.append((f"blocks.{layer}.mlp.hook_in", lambda a, hook, i=layer: keep(a, hook, i)))
        hooks.append((f"blocks.{layer}.mlp.hook_out", lambda a, hook, i=layer: swap(a, hook, i)))
    return hooks


def _zero_mlp_hooks(rm, mask: Tensor) -> list:
    def zero(act, hook):
        out = act.clone()
        out[mask] = 0
        return out

    return [(f"blocks.{layer}.mlp.hook_out", zero) for layer in range(rm.cfg.n_layers)]


def _layer_moments(rm, tokens: Tensor, mask: Tensor, moments: list[Moments]) -> Tensor:
    names = [f"blocks.{i}.mlp.hook_{d}" for i in range(rm.cfg.n_layers) for d in ("in", "out")]
    logits, cache = rm.run_with_cache(tokens, names_filter=lambda n: n in names)
    for layer, m in enumerate(moments):
        x = cache[f"blocks.{layer}.mlp.hook_in"][mask]
        y = cache[f"blocks.{layer}.mlp.hook_out"][mask]
        tc = rm.transcoders[layer]
        acts = tc.encode(x)
        m.add(y, tc.decode(acts, x), acts)
    return logits


@torch.no_grad()
def replacement_metrics(
    rm, tokens: Int[Tensor, "row pos"], special_ids: list[int], batch: int = 32
) -> dict:
    """Per-layer FVU/L0/dead fraction and whole-model agreement of the replacement model."""
    moments = [Moments(tc.d_transcoder) for tc in rm.transcoders]
    sums = {"agree": 0.0, "kl": 0.0, "ce_model": 0.0, "ce_replacement": 0.0, "ce_zero_mlp": 0.0}
    n = 0
    for x in batches(tokens, batch):
        mask = content_mask(x, special_ids)
        clean = _layer_moments(rm, x, mask, moments)
        repl = rm.run_with_hooks(x, fwd_hooks=_replace_hooks(rm, mask))
        zero = rm.run_with_hooks(x, fwd_hooks=_zero_mlp_hooks(rm, mask))
        pred = mask[:, :-1]  # positions whose next-token prediction is scored
        lp_clean = clean[:, :-1].log_softmax(-1)[pred]
        lp_repl = repl[:, :-1].log_softmax(-1)[pred]
        target = x[:, 1:][pred]
        sums["agree"] += float((lp_clean.argmax(-1) == lp_repl.argmax(-1)).sum())
        sums["kl"] += float((lp_clean.exp() * (lp_clean - lp_repl)).sum())
        for key, logits in (("ce_model", clean), ("ce_replacement", repl), ("ce_zero_mlp", zero)):
            lp = logits[:, :-1].log_softmax(-1)[pred]
            sums[key] += float(-lp.gather(-1, target[:, None]).sum())
        n += int(pred.sum())
    out = {k: v / n for k, v in sums.items()}
    out["top1_agreement"] = out.pop("agree")
    out["ce_recovered"] = recovered(out["ce_zero_mlp"], out["ce_replacement"], out["ce_model"])
    out["n_tokens"] = n
    out["layers"] = []
    for m in moments:
        r = m.result()
        fve = r.pop("fve")
        out["layers"].append({"fvu": None if fve is None else 1 - fve, **r})
    return out
