"""The activation-difference lens: what a fine-tune wrote into the residual stream, read off the
mean difference of two models' activations on text unrelated to the fine-tune.

Following Minder et al., "Narrow finetuning leaves clearly readable traces in activation
differences" (2025): both models read the same texts; at each residual stream hook point
(``blocks.i.hook_resid_pre`` for every block, and the last block's ``hook_resid_post``) the
difference ``resid_B - resid_A`` is averaged over the texts at each of the first `positions`
tokens after the BOS, one position at a time (as the paper reads them: the first few
positions, k = 5, of random web text, where a narrow fine-tune leaves a strong, near
context-free bias, strongest at the first), and over those positions together.

The mean difference ``delta`` of a layer is read two ways:

- through side B's unembedding: ``W_U @ norm(delta)``, where ``norm`` is the final norm's
  normalisation applied to the difference vector itself (centred for LayerNorm, divided by
  its root mean square, times ``ln_final.w`` where that is not folded into ``W_U``), without
  the norm's bias and without ``b_U``: the bias terms do not depend on the difference, and
  the vector's own scale does not change the ranking. Special tokens are left out;
- through an SAE of side A (the base model's dictionary) at its hook point: the latents whose
  decoder directions have the largest cosine with ``delta`` (and the most negative: what B
  has less of). The decoder is the linear reading of a direction; the encoder of a
  difference vector is not (its bias and threshold are set for activations, not
  differences); per-latent activation changes are the ``latent_diff_set`` job's.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

NORMALISATION = (
    "W_U of side B applied to the final norm's normalisation of the mean difference itself "
    "(centred for LayerNorm, divided by its RMS, times ln_final.w when not folded); no norm "
    "bias, no b_U; special tokens left out"
)


def resid_hooks(n_layers: int) -> list[str]:
    """The residual stream between blocks: resid_pre of each block, then the last resid_post."""
    return [f"blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [
        f"blocks.{n_layers - 1}.hook_resid_post"
    ]


def token_rows(
    tok, texts: list[str], n_ctx: int, *, chat: bool = False, max_chars: int = 20_000
) -> list[list[int]]:
    """Each text's ids, the BOS first (cut to the context). With `chat`, the text is a user
    turn in the tokenizer's chat template, ending where the assistant's reply starts (the
    template writes its own BOS)."""
    rows = []
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    for text in texts:
        text = text[:max_chars]
        if chat:
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            ids = tok(rendered, add_special_tokens=False)["input_ids"]
            if not bos or not ids or ids[0] != bos[0]:
                ids = bos + ids
        else:
            ids = bos + tok(text, add_special_tokens=False)["input_ids"]
        rows.append(ids[:n_ctx])
    return rows


class DiffSums:
    """Running sums of ``resid_B - resid_A`` at `hooks`, at each of the first `positions`
    positions after the BOS, over rows added one at a time (``add``)."""

    def __init__(self, hooks: list[str], positions: int, d_model: int):
        self.hooks, self.positions = hooks, positions
        self.total = torch.zeros(positions, len(hooks), d_model, dtype=torch.float64)
        self.norm_a = torch.zeros(len(hooks), dtype=torch.float64)
        self.count = [0] * positions

    @torch.inference_mode()
    def add(self, model_a: HookedTransformer, model_b: HookedTransformer, ids: list[int]) -> None:
        n = min(len(ids) - 1, self.positions)  # positions 1..n count
        if n <= 0:
            return
        keep = set(self.hooks)
        x = torch.tensor([ids[: n + 1]], device=model_a.cfg.device)  # causal: no more needed
        _, ca = model_a.run_with_cache(x, names_filter=lambda h: h in keep)
        _, cb = model_b.run_with_cache(x.to(model_b.cfg.device), names_filter=lambda h: h in keep)
        for j, h in enumerate(self.hooks):
            a = ca[h][0, 1:].double().cpu()  # [n, d]
            self.total[:n, j] += cb[h][0, 1:].double().cpu() - a
            self.norm_a[j] += a.norm(dim=-1).sum()
        for p in range(n):
            self.count[p] += 1

    def result(
        self,
    ) -> tuple[
        Float[Tensor, "k hook d"], Float[Tensor, "hook d"], Float[Tensor, " hook"], list[int]
    ]:
        """The mean difference at each position (``[k, hook, d]``) and over all of them
        together (``[hook, d]``), the mean norm of side A's activations (for scale), and how
        many rows reached each position."""
        c = torch.tensor(self.count, dtype=torch.float64).clamp(min=1)
        n = max(sum(self.count), 1)
        per_pos = self.total / c[:, None, None]
        return per_pos.float(), (self.total.sum(0) / n).float(), (self.norm_a / n).float(), \
            list(self.count)  # fmt: skip


def mean_difference(
    model_a: HookedTransformer,
    model_b: HookedTransformer,
    rows: list[list[int]],
    hooks: list[str],
    positions: int,
) -> tuple[Float[Tensor, "k hook d"], Float[Tensor, "hook d"], Float[Tensor, " hook"], list[int]]:
    """``DiffSums.result`` over `rows`."""
    sums = DiffSums(hooks, positions, model_a.cfg.d_model)
    for ids in rows:
        sums.add(model_a, model_b, ids)
    return sums.result()


def normalised(model: HookedTransformer, delta: Float[Tensor, "... d"]) -> Float[Tensor, "... d"]:
    """The final norm's normalisation of `delta` itself, without its bias (see the module)."""
    x = delta.float()
    if getattr(model.cfg, "normalization_type", None) in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    x = x / x.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-12)
    w = getattr(getattr(model, "ln_final", None), "w", None)
    return x * w.float().to(x.device) if w is not None else x


@torch.inference_mode()
def unembed_read(
    model: HookedTransformer, delta: Float[Tensor, " d"], k: int, skip: set[int]
) -> tuple[list[int], list[float], list[int], list[float]]:
    """The `k` tokens ``W_U @ normalised(delta)`` ranks highest and lowest, `skip` left out:
    (top ids, their values, bottom ids, their values)."""
    logits = normalised(model, delta.to(model.W_U.device)) @ model.W_U.float()
    if skip:
        idx = torch.tensor(sorted(skip), device=logits.device)
        hi = logits.index_fill(0, idx, float("-inf"))
        lo = logits.index_fill(0, idx, float("inf"))
    else:
        hi = lo = logits
    top = hi.topk(k)
    bottom = lo.topk(k, largest=False)
    return (
        top.indices.tolist(),
        top.values.tolist(),
        bottom.indices.tolist(),
        bottom.values.tolist(),
    )


def aligned_latents(
    W_dec: Float[Tensor, "d_latent d"], delta: Float[Tensor, " d"], k: int
) -> tuple[list[int], list[float], list[int], list[float]]:
    """The latents whose decoder directions have the largest and the most negative cosine with
    `delta`: (top ids, cosines, bottom ids, cosines)."""
    W = W_dec.float()
    cos = (W @ delta.float().to(W.device)) / (W.norm(dim=-1) * delta.float().norm()).clamp(
        min=1e-12
    )
    k = min(k, cos.numel())
    top, bottom = cos.topk(k), cos.topk(k, largest=False)
    return (
        top.indices.tolist(),
        top.values.tolist(),
        bottom.indices.tolist(),
        bottom.values.tolist(),
    )
