"""Top-activating examples of every latent of the organism's SAEs and transcoders.

A *source* is one dictionary reading one hook point of the engine's model: an SAE at its
hook, or one layer's transcoder at ``blocks.{L}.ln2.hook_normalized`` (its MLP input). Two
passes over held-out rows: the first keeps, per latent, the ``top_k`` rows with the highest
activation (one example per row, at its maximum, content positions only); the second cuts a
window of ``before + 1 + after`` tokens around each maximum with the latent's activation at
every token. Each latent gets a deterministic label from its examples (``organism.labels``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from organism.dict_data import KINDS, Rows, content_mask
from organism.dict_metrics import batches
from organism.labels import label_latent

FORMAT = "interpscope-latent-examples/1"


@dataclass
class Source:
    name: str
    hook_name: str
    encode: Callable[[Float[Tensor, "... d_in"]], Float[Tensor, "... d_latent"]]
    d_latent: int


@dataclass
class TopK:
    """Running top-k (value, row, pos) per latent, one entry per row."""

    k: int
    d_latent: int
    values: Tensor = field(init=False)
    rows: Tensor = field(init=False)
    pos: Tensor = field(init=False)
    active: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.values = torch.zeros(self.k, self.d_latent)
        self.rows = torch.zeros(self.k, self.d_latent, dtype=torch.long)
        self.pos = torch.zeros(self.k, self.d_latent, dtype=torch.long)
        self.active = torch.zeros(self.d_latent)

    def add(self, acts: Float[Tensor, "b pos l"], row0: int) -> None:
        self.active += (acts > 0).sum((0, 1)).float()
        best, best_pos = acts.max(1)  # [b, l]
        rows = torch.arange(row0, row0 + acts.shape[0])[:, None].expand_as(best)
        values = torch.cat([self.values, best])
        top = values.topk(self.k, dim=0)
        self.values = top.values
        self.rows = torch.cat([self.rows, rows]).gather(0, top.indices)
        self.pos = torch.cat([self.pos, best_pos]).gather(0, top.indices)


def source_acts(
    model: HookedTransformer,
    sources: list[Source],
    tokens: Int[Tensor, "b pos"],
    special_ids: list[int],
) -> list[Float[Tensor, "b pos l"]]:
    names = {s.hook_name for s in sources}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    keep = content_mask(tokens, special_ids)[..., None]
    return [s.encode(cache[s.hook_name]) * keep for s in sources]


def _windows(acts: Tensor, tops: TopK, row0: int, width: int, before: int, out: Tensor) -> None:
    """Fill `out` [k, l, width] with activation windows of the entries whose row is here."""
    b, seq, _ = acts.shape
    here = (tops.rows >= row0) & (tops.rows < row0 + b)
    ex, lat = here.nonzero(as_tuple=True)
    start = (tops.pos[ex, lat] - before).clamp(0, seq - width)
    cols = start[:, None] + torch.arange(width)
    out[ex, lat] = acts[(tops.rows[ex, lat] - row0)[:, None], cols, lat[:, None]]


@torch.no_grad()
def collect(
    model: HookedTransformer,
    sources: list[Source],
    rows: Rows,
    special_ids: list[int],
    *,
    top_k: int = 10,
    before: int = 10,
    after: int = 3,
    batch: int = 32,
) -> list[tuple[TopK, Tensor]]:
    """Per source: its top-k table and the activation windows [k, latent, width]."""
    tops = [TopK(top_k, s.d_latent) for s in sources]
    for i, x in enumerate(batches(rows.tokens, batch)):
        for top, acts in zip(tops, source_acts(model, sources, x, special_ids), strict=True):
            top.add(acts, i * batch)
    width = before + 1 + after
    wins = [torch.zeros(top_k, s.d_latent, width) for s in sources]
    for i, x in enumerate(batches(rows.tokens, batch)):
        for top, win, acts in zip(
            tops, wins, source_acts(model, sources, x, special_ids), strict=True
        ):
            _windows(acts, top, i * batch, width, before, win)
    return list(zip(tops, wins, strict=True))


def latent_records(
    top: TopK, win: Tensor, rows: Rows, n_tokens: int, vocab: list[str], before: int
) -> list[dict]:
    """One JSON-ready record per latent: label, frequency, examples."""
    k, d_latent, width = win.shape
    seq = rows.tokens.shape[1]
    records = []
    for lat in range(d_latent):
        examples = []
        for e in range(k):
            value = float(top.values[e, lat])
            if value <= 0:
                break
            row, pos = int(top.rows[e, lat]), int(top.pos[e, lat])
            start = max(0, min(pos - before, seq - width))  # as in _windows
            examples.append(
                {
                    "tokens": rows.tokens[row, start : start + width].tolist(),
                    "acts": [round(float(a), 3) + 0.0 for a in win[e, lat]],  # no -0.0
                    "max_pos": pos - start,
                    "row": row,  # in the held-out rows (seed in the file), to recompute
                    "pos": pos,
                    "kind": int(rows.kinds[row, pos]),
                }
            )
        records.append(
            {
                "index": lat,
                "label": label_latent(examples, vocab),
                "frequency": float(top.active[lat]) / n_tokens,
                "max_act": round(float(top.values[0, lat]), 3),
                "examples": examples,
            }
        )
    return records


def write_examples(path: Path, source: Source, records: list[dict], meta: dict) -> None:
    """The compact file shipped beside a dictionary's weights (gzip JSON)."""
    doc = {
        "format": FORMAT,
        "source": source.name,
        "hook_name": source.hook_name,
        "kinds": list(KINDS),
        **meta,
        "latents": records,
    }
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))


def read_examples(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)
