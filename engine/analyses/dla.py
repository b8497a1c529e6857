"""Direct logit attribution: what each head, MLP and embedding writes straight into a logit.

At one position the final residual stream is a sum of components: token embedding, position
embedding, each head's output ``z @ W_O``, each layer's attention bias ``b_O``, each MLP's
output. The final layer norm is linear once its scale is fixed, so with the scale the model
actually used at that position (as TransformerLens's ``apply_ln_to_stack`` /
``logit_attrs`` do) each component maps to a share of the logit; those shares plus the
unembedding bias ``b_U`` sum to the logit the model outputs. With a baseline token the same
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

from engine import targets
from engine.analyses import Analysis, register
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.views import DLAParams, DLAResult

Vec = Float[Tensor, "d_model"]


def _act(run: PromptRun, name: str, pos: int) -> Vec:
    cache = run.cache
    if name in cache.cache_dict:
        return cache[name][pos].float()
    return torch.zeros(run.lm.model.cfg.d_model, device=run.lm.device)


def components(run: PromptRun, pos: int) -> dict[str, Float[Tensor, "... d_model"]]:
    """The final residual stream at `pos`, split: embed, pos_embed, heads, attn_bias, mlps."""
    model, n = run.lm.model, run.lm.n_layers
    heads = torch.stack(
        [
            torch.einsum("hd,hdm->hm", run.cache["z", layer][pos].float(), model.W_O[layer].float())
            for layer in range(n)
        ]
    )  # [layer, head, d_model]
    if model.cfg.use_normalization_before_and_after:
        heads = torch.stack(
            [_through_post_norm(run, layer, pos, heads[layer]) for layer in range(n)]
        )
    attn_out = torch.stack([_act(run, f"blocks.{layer}.hook_attn_out", pos) for layer in range(n)])
    mlps = torch.stack([_act(run, f"blocks.{layer}.hook_mlp_out", pos) for layer in range(n)])
    return {
        "embed": _act(run, "hook_embed", pos),
        "pos_embed": _act(run, "hook_pos_embed", pos),
        "heads": heads,
        "attn_bias": attn_out - heads.sum(1),
        "mlps": mlps,
    }


def _through_post_norm(
    run: PromptRun, layer: int, pos: int, heads: Float[Tensor, "head d_model"]
) -> Float[Tensor, "head d_model"]:
    """Heads' outputs through the block's post-attention RMSNorm, its scale at `pos` fixed."""
    scale = run.cache[f"blocks.{layer}.ln1_post.hook_scale"][pos].float()
    return heads / scale * run.lm.model.blocks[layer].ln1_post.w.float()


def uncapped(run: PromptRun, logits: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """The logits before the model's final soft cap (the cap is c * tanh(x / c))."""
    cap = run.lm.model.cfg.output_logits_soft_cap
    return logits if cap <= 0 else cap * torch.atanh(logits / cap)


def ln_final_scale(run: PromptRun, pos: int) -> float:
    if "ln_final.hook_scale" in run.cache.cache_dict:
        return float(run.cache["ln_final.hook_scale"][pos])
    return 1.0


def to_logit(
    run: PromptRun, resid: Float[Tensor, "... d_model"], direction: Vec, scale: float
) -> Float[Tensor, "..."]:
    """The logit share of residual components, through ln_final with its scale held fixed."""
    if run.lm.model.cfg.normalization_type in ("LN", "LNPre"):
        resid = resid - resid.mean(-1, keepdim=True)
    return (resid / scale) @ direction


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
    parts = {k: to_logit(run, v, direction, scale) for k, v in components(run, pos).items()}
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


register(
    Analysis(
        name="dla",
        version=1,
        params=DLAParams,
        result=DLAResult,
        fn=dla,
        check=check,
        description="direct logit attribution of each head, MLP and embedding at one pos",
    )
)
