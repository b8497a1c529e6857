"""Latent diffs: one SAE (attached to side A's model) applied to both sides' activations at its
hook point, so its latents name what changed between two models (or two prompts).

- per token of one prompt (the pair analysis ``diff_latents``): the latents whose activation
  changed most (``b - a``, largest ``|b - a|`` first), and the prompt's strongest changes over
  its content tokens (special tokens left out, as the SAEs were trained without them), with
  the labels of the SAE's latent book;
- over a text set (``set_stats``, the ``latent_diff_set`` job): each latent's mean activation
  and firing frequency on both sides over the counted tokens, and the texts where it changed
  most (``TopExamples`` of engine/latent_book.py, fed with the change instead of an
  activation); with a control text set, each latent's change there is subtracted before
  ranking, so changes common to both sets (the chat format's) cancel.

Both sides are encoded by the same ``Dictionary.encode`` (SAELens ``SAE.encode``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from engine import saes
from engine.analyses.base import Analysis
from engine.errors import EngineError
from engine.latent_book import TopExamples
from engine.latent_shift import LatentSums
from engine.loading import LoadedModel
from engine.pairs import RunPair
from engine.run import PromptRun
from engine.schemas.diff_latents import (
    ChangedLatent,
    DiffExample,
    DiffLatentsParams,
    DiffLatentsResult,
    LatentChange,
    StrongChange,
)


def label(d: saes.Dictionary, i: int) -> str:
    rec = d.book.record(i) if d.book else None
    return rec["label"] if rec else ""


def _frequency(d: saes.Dictionary, i: int) -> float | None:
    rec = d.book.record(i) if d.book else None
    return rec.get("frequency") if rec else None


def content_positions(token_ids: list[int], special: set[int]) -> list[int]:
    return [p for p, t in enumerate(token_ids) if t not in special]


def per_token_top(
    a: Float[Tensor, "pos d"], b: Float[Tensor, "pos d"], k: int
) -> list[list[ChangedLatent]]:
    """At each position the `k` latents with the largest ``|b - a|`` (unchanged ones left out)."""
    delta = b - a
    vals, idx = delta.abs().topk(min(k, delta.shape[-1]), dim=-1)
    out = []
    for p, (row_i, row_v) in enumerate(zip(idx.tolist(), vals.tolist(), strict=True)):
        out.append([ChangedLatent(index=i, a=float(a[p, i]), b=float(b[p, i]),
                                  delta=float(delta[p, i]))
                     for i, v in zip(row_i, row_v, strict=True) if v > 0])  # fmt: skip
    return out


def strongest_changes(
    a: Float[Tensor, "pos d"], b: Float[Tensor, "pos d"], keep: list[int], n: int,
    d: saes.Dictionary,
) -> list[StrongChange]:  # fmt: skip
    """The `n` latents whose ``|b - a|`` peaks highest over the positions `keep`."""
    if not keep:
        return []
    delta = (b - a)[keep]
    best, where = delta.abs().max(0)
    out = []
    for i in best.argsort(descending=True)[:n].tolist():
        if best[i] <= 0:
            break
        p = keep[int(where[i])]
        out.append(StrongChange(index=i, a=float(a[p, i]), b=float(b[p, i]),
                                delta=float(b[p, i] - a[p, i]), pos=p, label=label(d, i),
                                frequency=_frequency(d, i)))  # fmt: skip
    return out


@torch.inference_mode()
def diff_latents(pair: RunPair, params: DiffLatentsParams) -> DiffLatentsResult:
    run_a: PromptRun = pair.a
    run_b: PromptRun = pair.b
    d = saes.for_model(run_a.lm).get(params.sae)  # 404 when side A does not have it
    _check_side_b(d, run_b.lm)
    a = d.encode(run_a.act(d.reads)).float()  # the forward passes run here, on first use
    b = d.encode(run_b.act(d.reads).to(a.device)).float()  # B: a light run at a stream
    special = set(run_a.lm.model.tokenizer.all_special_ids)
    keep = [p for p in content_positions(run_a.token_ids, special)
            if run_b.token_ids[p] not in special]  # fmt: skip
    return DiffLatentsResult(
        sae=d.info,
        kind=pair.kind,
        tokens=run_a.token_infos,
        tokens_b=run_b.token_infos if pair.kind == "prompts" else None,
        top=per_token_top(a, b, params.top_k),
        l0_a=(a > 0).sum(-1).tolist(),
        l0_b=(b > 0).sum(-1).tolist(),
        strongest=strongest_changes(a, b, keep, params.n_strongest, d),
    )


def check(lm: LoadedModel, params: DiffLatentsParams) -> None:
    """Side A's check, before any forward pass: the SAE is attached to side A's model (404)."""
    saes.for_model(lm).get(params.sae)


def check_b(lm_a: LoadedModel, lm_b: LoadedModel, params: DiffLatentsParams) -> None:
    """Side B's (``model_b``), before any forward pass: side B's model has the hook point side
    A's SAE reads (422). Side B need not have the SAE itself."""
    _check_side_b(saes.for_model(lm_a).get(params.sae), lm_b)


def _check_side_b(d: saes.Dictionary, lm_b: LoadedModel) -> None:
    if d.reads not in lm_b.model.hook_dict:
        raise EngineError(422, "sae_hook_missing",
                          f"Side B ({lm_b.name}) has no hook point {d.reads!r}.")  # fmt: skip


# --- over a text set ---------------------------------------------------------------------
@dataclass
class SetStats:
    """Running sums over the counted tokens of a text set on both sides (``LatentSums`` of
    engine/latent_shift.py, the shipped shift files' reduction), and the texts where each
    latent changed most each way."""

    d_latent: int
    n_examples: int
    device: str | torch.device = "cpu"
    a: LatentSums = field(init=False)
    b: LatentSums = field(init=False)
    up: TopExamples | None = field(init=False)
    down: TopExamples | None = field(init=False)

    def __post_init__(self) -> None:
        self.a = LatentSums(self.d_latent, self.device)
        self.b = LatentSums(self.d_latent, self.device)
        k = self.n_examples
        self.up = TopExamples(k, self.d_latent, device=self.device) if k else None
        self.down = TopExamples(k, self.d_latent, device=self.device) if k else None

    @property
    def n(self) -> int:
        return self.a.n

    def add(
        self, a: Float[Tensor, "pos d"], b: Float[Tensor, "pos d"], tokens: Int[Tensor, " pos"],
        mask: Tensor, row: int,
    ) -> None:  # fmt: skip
        """One text: its activations on both sides and which positions count (`mask`)."""
        self.a.add(a[mask])
        self.b.add(b[mask])
        if self.up is not None:
            delta = (b - a) * mask[:, None]
            self.up.add(delta.clamp(min=0)[None], tokens[None], row)
            self.down.add((-delta).clamp(min=0)[None], tokens[None], row)

    def means(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(mean A, mean B, frequency A, frequency B), float32 on the CPU."""
        (ma, fa), (mb, fb) = self.a.means(), self.b.means()
        return ma, mb, fa, fb


def _examples(c: TopExamples | None, i: int, vocab: list[str]) -> list[DiffExample]:
    if c is None:
        return []
    out = []
    for e in range(c.k):
        if c.values[e, i] <= 0:
            break
        shown = c.win_tok[e, i] >= 0
        out.append(DiffExample(
            text=int(c.rows[e, i]),
            tokens=[vocab[t] for t in c.win_tok[e, i][shown].tolist()],
            deltas=[round(v, 4) for v in c.win_acts[e, i][shown].tolist()],
            max_pos=int(c.pos[e, i] - c.start[e, i]),
        ))  # fmt: skip
    return out


def set_changes(
    stats: SetStats, d: saes.Dictionary, n_top: int, vocab: list[str],
    control: SetStats | None = None,
) -> tuple[list[LatentChange], list[LatentChange], list[int], list[int]]:  # fmt: skip
    """The latents whose mean activation rose most and fell most (with labels and the texts
    where they changed most), and the latents by firing-frequency gain and loss. With a
    `control` set, each change is taken minus the same latent's change on the control."""
    ma, mb, fa, fb = stats.means()
    delta = mb - ma
    df = fb - fa
    key, c_delta = delta, None
    if control is not None:
        ca, cb, cfa, cfb = control.means()
        c_delta = cb - ca
        key = delta - c_delta
        df = df - (cfb - cfa)

    def change(i: int, c: TopExamples | None) -> LatentChange:
        return LatentChange(index=i, label=label(d, i), mean_a=float(ma[i]), mean_b=float(mb[i]),
                            delta=float(delta[i]), freq_a=float(fa[i]), freq_b=float(fb[i]),
                            examples=_examples(c, i, vocab),
                            control_delta=None if c_delta is None else float(c_delta[i]),
                            net_delta=None if c_delta is None else float(key[i]))  # fmt: skip

    n_top = min(n_top, key.numel())
    up = [change(i, stats.up) for i in key.topk(n_top).indices.tolist() if key[i] > 0]
    down = [change(i, stats.down) for i in (-key).topk(n_top).indices.tolist() if key[i] < 0]
    f_up = [i for i in df.topk(n_top).indices.tolist() if df[i] > 0]
    f_down = [i for i in (-df).topk(n_top).indices.tolist() if df[i] < 0]
    return up, down, f_up, f_down


@torch.inference_mode()
def add_text(
    stats: SetStats, d: saes.Dictionary, model_a, model_b, ids: list[int], special: set[int],
    where: str, row: int,
) -> None:  # fmt: skip
    """Run one text through both models and add the SAE's activations to `stats`."""
    x = torch.tensor([ids], device=model_a.cfg.device)
    _, ca = model_a.run_with_cache(x, names_filter=lambda h: h == d.reads)
    _, cb = model_b.run_with_cache(x.to(model_b.cfg.device), names_filter=lambda h: h == d.reads)
    a = d.encode(ca[d.reads][0]).float()
    b = d.encode(cb[d.reads][0].to(a.device)).float()
    tokens = x[0].to(a.device)
    mask = torch.tensor([t not in special for t in ids], device=a.device)
    if where == "last":
        last = torch.zeros_like(mask)
        last[len(ids) - 1] = True
        mask = mask & last
    stats.add(a, b, tokens, mask, row)


Tick = Callable[[int], None]

DIFF_LATENTS = Analysis(
    name="diff_latents",
    version=1,
    params=DiffLatentsParams,
    result=DiffLatentsResult,
    fn=diff_latents,
    feature="saes",
    available=saes.availability,
    check=check,
    check_b=check_b,
    pair=True,
    light_b=True,  # an SAE at a residual stream reads B's light run; elsewhere, B in full
    description="one SAE on both sides of a pair: per token the latents whose activation "
    "changed most, and the prompt's strongest changes with labels",
)
