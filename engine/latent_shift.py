"""How one SAE's latents change between two models of one architecture (a base and its fine-tune).

The SAE (trained on model A, the base) encodes both models' activations at its hook point on
the same texts; per text set and latent it records the mean activation (over the set's counted
positions, zeros included) and the firing frequency (share of those positions where the latent
is > 0) under each model. A latent whose mean or frequency moves between A and B is one the
fine-tune changed, or one it recruited for a new behaviour (e.g. a latent that fires on
harmful requests only in the chat model).

A *text set* is a batch of token rows and a mask of the positions that count (content tokens,
or only the last token of each prompt). Pure functions over TransformerLens models; files are
safetensors (``save_shift`` / ``load_shift``):

- tensors ``mean_a``, ``mean_b``, ``freq_a``, ``freq_b``: float32 ``[n_sets, d_sae]``, row
  ``i`` for set ``sets[i]``;
- metadata (strings): ``format`` (``FORMAT``), ``sets`` and ``n_tokens`` (JSON lists: each
  set's name and number of counted positions), ``hook_name``, and whatever the writer adds
  under ``meta`` (JSON: which models and SAE, how the sets were built).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Bool, Float, Int
from safetensors.torch import load_file, save
from torch import Tensor
from transformer_lens import HookedTransformer

from engine.atomic import atomic_write

FORMAT = "interpscope-latent-shift/1"
Encoder = Callable[[Float[Tensor, "... d_in"]], Float[Tensor, "... d_sae"]]


@dataclass
class TextSet:
    name: str
    tokens: Int[Tensor, "row pos"]
    mask: Bool[Tensor, "row pos"]  # the positions that count


@dataclass
class LatentShift:
    hook_name: str
    sets: list[str]
    n_tokens: list[int]
    mean_a: Float[Tensor, "set d_sae"]
    mean_b: Float[Tensor, "set d_sae"]
    freq_a: Float[Tensor, "set d_sae"]
    freq_b: Float[Tensor, "set d_sae"]
    meta: dict = field(default_factory=dict)

    def row(self, name: str) -> int:
        return self.sets.index(name)

    def delta_mean(self, name: str) -> Float[Tensor, " d_sae"]:
        i = self.row(name)
        return self.mean_b[i] - self.mean_a[i]

    def delta_freq(self, name: str) -> Float[Tensor, " d_sae"]:
        i = self.row(name)
        return self.freq_b[i] - self.freq_a[i]


@dataclass
class LatentSums:
    """Running sums over the counted positions of a text set: per latent, its activation's sum
    and how many times it fired (> 0); the mean activation (zeros included) and the firing
    frequency are these over the count. Sums in float64, so the order texts come in (batches,
    one text at a time) does not move the means. The one reduction of both the shipped shift
    files (``latent_shift``) and the ``latent_diff_set`` job (engine/analyses/diff_latents.py)."""

    d_sae: int
    device: str | torch.device = "cpu"
    total: Tensor = field(init=False)
    fires: Tensor = field(init=False)
    n: int = 0

    def __post_init__(self) -> None:
        self.total = torch.zeros(self.d_sae, dtype=torch.float64, device=self.device)
        self.fires = torch.zeros(self.d_sae, dtype=torch.long, device=self.device)

    def add(self, acts: Float[Tensor, "pos d_sae"]) -> None:
        """The activations of the counted positions (already selected)."""
        self.total += acts.sum(0, dtype=torch.float64)
        self.fires += (acts > 0).sum(0)
        self.n += acts.shape[0]

    def means(self) -> tuple[Float[Tensor, " d_sae"], Float[Tensor, " d_sae"]]:
        """(mean activation, firing frequency) in float32 on the CPU; zeros when nothing counted."""
        n = max(self.n, 1)
        return (self.total / n).float().cpu(), (self.fires / n).float().cpu()


@torch.no_grad()
def latent_stats(
    model: HookedTransformer,
    encode: Encoder,
    hook_name: str,
    tokens: Int[Tensor, "row pos"],
    mask: Bool[Tensor, "row pos"],
    batch: int = 32,
) -> tuple[Float[Tensor, " d_sae"], Float[Tensor, " d_sae"], int]:
    """Mean activation and firing frequency of every latent over the masked positions."""
    sums: LatentSums | None = None
    for i in range(0, tokens.shape[0], batch):
        x, m = tokens[i : i + batch], mask[i : i + batch]
        _, cache = model.run_with_cache(x, names_filter=hook_name, stop_at_layer=_stop(hook_name))
        acts = encode(cache[hook_name][m]).float()  # [n, d_sae]
        if sums is None:
            sums = LatentSums(acts.shape[-1], acts.device)
        sums.add(acts)
    if sums is None or sums.n == 0:
        raise ValueError("a text set with no counted position")
    return (*sums.means(), sums.n)


def _stop(hook_name: str) -> int | None:
    """Run only the blocks up to the hook's (``blocks.L.*``); the whole model otherwise."""
    parts = hook_name.split(".")
    return int(parts[1]) + 1 if parts[0] == "blocks" and parts[1].isdigit() else None


def latent_shift(
    model_a: HookedTransformer,
    model_b: HookedTransformer,
    encode: Encoder,
    hook_name: str,
    sets: list[TextSet],
    batch: int = 32,
) -> LatentShift:
    """The SAE `encode` at `hook_name` on both models, per text set (see the module doc)."""
    rows = {k: [] for k in ("mean_a", "mean_b", "freq_a", "freq_b")}
    counts = []
    for ts in sets:
        for tag, model in (("a", model_a), ("b", model_b)):
            mean, freq, n = latent_stats(model, encode, hook_name, ts.tokens, ts.mask, batch)
            rows[f"mean_{tag}"].append(mean)
            rows[f"freq_{tag}"].append(freq)
        counts.append(n)
    stacked = {k: torch.stack(v) for k, v in rows.items()}
    return LatentShift(hook_name, [s.name for s in sets], counts, **stacked)


def top_changes(
    shift: LatentShift, set_name: str, k: int = 10, by: str = "mean", increase: bool = True
) -> list[tuple[int, float]]:
    """The `k` latents whose mean activation (``by="mean"``) or frequency (``"freq"``) rose
    most (`increase`) or fell most in `set_name`, as (index, change)."""
    delta = shift.delta_mean(set_name) if by == "mean" else shift.delta_freq(set_name)
    vals, idx = (delta if increase else -delta).topk(min(k, delta.numel()))
    sign = 1 if increase else -1
    return [(int(i), sign * float(v)) for v, i in zip(vals, idx, strict=True)]


def save_shift(path: Path, shift: LatentShift) -> None:
    tensors = {
        k: getattr(shift, k).contiguous().float() for k in ("mean_a", "mean_b", "freq_a", "freq_b")
    }
    meta = {
        "format": FORMAT,
        "hook_name": shift.hook_name,
        "sets": json.dumps(shift.sets),
        "n_tokens": json.dumps(shift.n_tokens),
        "meta": json.dumps(shift.meta),
    }
    atomic_write(Path(path), save(tensors, metadata=meta))


def load_shift(path: Path) -> LatentShift:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    t = load_file(str(path))
    return LatentShift(
        meta["hook_name"], json.loads(meta["sets"]), json.loads(meta["n_tokens"]),
        t["mean_a"], t["mean_b"], t["freq_a"], t["freq_b"], json.loads(meta.get("meta", "{}")),
    )  # fmt: skip
