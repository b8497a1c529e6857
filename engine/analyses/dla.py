"""Direct logit attribution: what each head, MLP and embedding writes straight into a logit.

At one position the final residual stream is a sum of components: token embedding, position
embedding, each head's output ``z @ W_O``, each layer's attention bias ``b_O``, each MLP's
output. The final layer norm is linear once its scale is fixed, so with the scale the model
actually used at that position each component maps to a share of the logit
(TransformerLens's own ``decompose_resid``, ``stack_head_results`` and ``apply_ln_to_stack``
split and scale the stream); those shares plus the unembedding bias ``b_U`` sum to the logit
the model outputs. With a baseline token the same
holds for the logit difference.

Gemma-2-style models normalise each attention output again before adding it to the
residual (``ln1_post``): with that norm's scale at `pos` held fixed too, each head's share is
``z @ W_O`` through it. Under a final logit soft cap (``c * tanh(logit / c)``) the shares sum
to the logit before the cap, which is what ``model_value`` then reports.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

from engine import targets
from engine.analyses.base import Analysis
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.analyses import DLAParams, DLAResult

READ = ("hook_embed", "hook_pos_embed", "hook_z", "hook_attn_out", "hook_mlp_out", "hook_scale")


def at_position(model: HookedTransformer, cache: ActivationCache, pos: int) -> ActivationCache:
    """The activations DLA reads (`cache` without its batch dimension), at `pos` only and in
    float32: TransformerLens then computes each head's output at that position alone, not
    at every position of a long prompt."""
    kept = {k: v[pos : pos + 1].float() for k, v in cache.items() if k.endswith(READ)}
    return ActivationCache(kept, model, has_batch_dim=False)


def logit_attribution(
    model: HookedTransformer,
    cache: ActivationCache,
    pos: int,
    direction: Float[Tensor, " d_model"],
) -> dict[str, Float[Tensor, "..."]]:
    """Each component's share of ``final residual stream @ direction`` at `pos`, through
    ln_final with its scale there held fixed: embed, pos_embed, heads [layer, head],
    attn_bias [layer] (b_O: a layer's output less its heads') and mlps [layer]."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    one = at_position(model, cache, pos)

    def to_logit(stack: Float[Tensor, "component 1 d_model"]) -> Float[Tensor, " component"]:
        return one.apply_ln_to_stack(stack, layer=-1)[:, 0] @ direction

    heads = one.stack_head_results(layer=-1)  # [layer * head, 1, d_model]: z @ W_O
    if model.cfg.use_normalization_before_and_after:  # Gemma-2: attention output normed again
        scale = torch.stack(
            [one[f"blocks.{layer}.ln1_post.hook_scale"] for layer in range(n_layers)]
        )
        w = torch.stack([model.blocks[layer].ln1_post.w.float() for layer in range(n_layers)])
        heads = heads.reshape(n_layers, n_heads, 1, -1) / scale[:, None] * w[:, None, None]
        heads = heads.reshape(n_layers * n_heads, 1, -1)  # through ln1_post, its scale fixed
    head = to_logit(heads).reshape(n_layers, n_heads)
    parts, labels = one.decompose_resid(layer=-1, return_labels=True)
    part = dict(zip(labels, to_logit(parts), strict=True))
    zero = torch.zeros((), device=direction.device)
    attn = torch.stack([part[f"{layer}_attn_out"] for layer in range(n_layers)])
    return {
        "embed": part.get("embed", zero),
        "pos_embed": part.get("pos_embed", zero),
        "heads": head,
        "attn_bias": attn - head.sum(1),
        "mlps": torch.stack([part.get(f"{layer}_mlp_out", zero) for layer in range(n_layers)]),
    }


def uncapped(run: PromptRun, logits: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """The logits before the model's final soft cap (the cap is c * tanh(x / c))."""
    cap = run.lm.model.cfg.output_logits_soft_cap
    return logits if cap <= 0 else cap * torch.atanh(logits / cap)


def ln_final_scale(run: PromptRun, pos: int) -> float:
    if "ln_final.hook_scale" in run.cache.cache_dict:
        return float(run.cache["ln_final.hook_scale"][pos])
    return 1.0


def check(lm: LoadedModel, params: DLAParams) -> None:
    targets.check(lm, params.target)
    targets.check(lm, params.baseline, what="baseline")


@torch.inference_mode()
def dla(run: PromptRun, params: DLAParams) -> DLAResult:
    lm, pos = run.lm, run.position(params.pos)
    target = (
        int(run.logits[pos].argmax())
        if params.target is None
        else targets.resolve(lm, params.target)
    )
    base = (
        None if params.baseline is None else targets.resolve(lm, params.baseline, what="baseline")
    )
    W_U, b_U = lm.model.W_U.float(), lm.model.b_U.float()
    logits = uncapped(run, run.logits[pos].double()).float()
    direction, bias, value = W_U[:, target], b_U[target], logits[target]
    if base is not None:
        direction, bias = direction - W_U[:, base], bias - b_U[base]
        value = value - logits[base]
    scale = ln_final_scale(run, pos)
    parts = logit_attribution(lm.model, run.cache, pos, direction)
    total = sum(float(v.sum()) for v in parts.values()) + float(bias)
    return DLAResult(
        pos=pos,
        token=run.token_infos[pos],
        target=targets.token_out(lm, target),
        baseline=None if base is None else targets.token_out(lm, base),
        metric="logit" if base is None else "logit difference",
        heads=parts["heads"].tolist(),
        mlps=parts["mlps"].tolist(),
        attn_bias=parts["attn_bias"].tolist(),
        embed=float(parts["embed"]),
        pos_embed=float(parts["pos_embed"]),
        unembed_bias=float(bias),
        total=total,
        model_value=float(value),
        ln_scale=scale,
    )


DLA = Analysis(
    name="dla",
    version=1,
    params=DLAParams,
    result=DLAResult,
    fn=dla,
    feature="dla",
    check=check,
    description="direct logit attribution of each head, MLP and embedding at one pos",
)
