"""Quality metrics of the organism's SAEs, measured on held-out corpus rows.

All per-token statistics are over *content* positions (not pad, not BOS), the positions the
SAEs were trained on. Cross-entropy is the model's mean next-token loss over every position
of the rows; the SAE splice and the zero-ablation baseline touch only content positions.

- ``l0``: mean number of active latents per token;
- ``fve``: fraction of variance explained, 1 - sum |x - x_hat|^2 / sum |x - mean(x)|^2;
- ``ce_recovered``: (CE_zero - CE_sae) / (CE_zero - CE_clean), zero-ablation baseline;
- ``dead_fraction``: share of latents that never fire on the held-out tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from jaxtyping import Bool, Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from organism.dict_data import content_mask

Encoder = Callable[[Float[Tensor, "... d_in"]], Float[Tensor, "... d_latent"]]


def recovered(zero: float, patched: float, clean: float) -> float | None:
    """(zero - patched) / (zero - clean); None when ablating changes nothing."""
    gap = zero - clean
    return None if abs(gap) < 1e-6 else (zero - patched) / gap


def batches(tokens: Int[Tensor, "row pos"], size: int) -> Iterator[Int[Tensor, "b pos"]]:
    for i in range(0, tokens.shape[0], size):
        yield tokens[i : i + size]


class Moments:
    """Running sums for FVE and L0 over content tokens."""

    def __init__(self, d_latent: int) -> None:
        self.n = 0
        self.sum_x: Tensor | None = None
        self.sum_sq = 0.0
        self.err_sq = 0.0
        self.active = 0.0
        self.fired = torch.zeros(d_latent, dtype=torch.bool)

    def add(
        self, x: Float[Tensor, "n d"], x_hat: Float[Tensor, "n d"], acts: Float[Tensor, "n l"]
    ) -> None:
        self.n += x.shape[0]
        s = x.sum(0).double()
        self.sum_x = s if self.sum_x is None else self.sum_x + s
        self.sum_sq += float((x.double() ** 2).sum())
        self.err_sq += float(((x - x_hat).double() ** 2).sum())
        self.active += float((acts > 0).sum())
        self.fired |= (acts > 0).any(0).cpu()

    def result(self) -> dict[str, float | None]:
        assert self.sum_x is not None and self.n > 0
        total_var = self.sum_sq - float((self.sum_x**2).sum()) / self.n
        return {
            "l0": self.active / self.n,
            "fve": 1.0 - self.err_sq / total_var if total_var > 0 else None,
            "dead_fraction": 1.0 - float(self.fired.float().mean()),
            "n_tokens": self.n,
        }


def _splice(mask: Bool[Tensor, "b pos"], replace: Callable[[Tensor], Tensor]):
    def hook(act: Tensor, hook) -> Tensor:
        out = act.clone()
        out[mask] = replace(act[mask])
        return out

    return hook


@torch.no_grad()
def sae_metrics(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "row pos"],
    special_ids: list[int],
    batch: int = 32,
) -> dict[str, float]:
    """L0, FVE, CE recovered and dead fraction of `sae` at its hook, on `tokens`."""
    hook_name = sae.cfg.metadata.hook_name
    moments = Moments(sae.cfg.d_sae)
    ce = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    n_rows = 0
    for x in batches(tokens, batch):
        mask = content_mask(x, special_ids)
        clean, cache = model.run_with_cache(x, return_type="loss", names_filter=hook_name)
        act = cache[hook_name][mask]
        acts = sae.encode(act)
        moments.add(act, sae.decode(acts), acts)
        recon = lambda a: sae.decode(sae.encode(a))  # noqa: E731
        spliced = model.run_with_hooks(
            x, return_type="loss", fwd_hooks=[(hook_name, _splice(mask, recon))]
        )
        zeroed = model.run_with_hooks(
            x, return_type="loss", fwd_hooks=[(hook_name, _splice(mask, torch.zeros_like))]
        )
        for key, val in (("clean", clean), ("sae", spliced), ("zero", zeroed)):
            ce[key] += float(val) * x.shape[0]
        n_rows += x.shape[0]
    ce = {k: v / n_rows for k, v in ce.items()}
    out = moments.result()
    out.update({f"ce_{k}": v for k, v in ce.items()})
    out["ce_recovered"] = recovered(ce["zero"], ce["sae"], ce["clean"])
    return out
