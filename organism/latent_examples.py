"""Top-activating examples of every latent of the organism's SAEs and transcoders.

A *source* is one dictionary reading one hook point of the engine's model: an SAE at its
hook, or one layer's transcoder at ``blocks.{L}.ln2.hook_normalized`` (its MLP input). One
pass over held-out rows, in batches, feeds each source's collector (``TopExamples`` of
engine/latent_book.py, the one the engine's ``latent_examples`` job uses): per latent the
``top_k`` rows with the highest activation (one example per row, at its maximum, content
positions only), with a window of ``before + 1 + after`` tokens around it. Each latent gets
a deterministic label from its examples (``organism.labels``); files are written in the
engine's latent-book format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from engine.latent_book import HIST_EDGES, TopExamples, read_doc, write_doc
from organism.dict_data import KINDS, Rows, content_mask
from organism.dict_metrics import batches
from organism.labels import label_latent


@dataclass
class Source:
    name: str
    hook_name: str
    encode: Callable[[Float[Tensor, "... d_in"]], Float[Tensor, "... d_latent"]]
    d_latent: int


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
) -> list[TopExamples]:
    """Per source: its collector over every row of `rows`."""
    tops = [TopExamples(top_k, s.d_latent, before=before, after=after) for s in sources]
    for i, x in enumerate(batches(rows.tokens, batch)):
        for top, acts in zip(tops, source_acts(model, sources, x, special_ids), strict=True):
            top.add(acts.float(), x, i * batch)
    return tops


def latent_records(top: TopExamples, rows: Rows, n_tokens: int, vocab: list[str]) -> list[dict]:
    """One JSON-ready record per latent: label, frequency, histogram, examples (each with the
    ``kind`` of document it sits in; ``row`` is in the held-out rows, seed in the file)."""
    kind = lambda row, pos: {"kind": int(rows.kinds[row, pos])}  # noqa: E731
    return top.records(vocab, n_tokens, label=label_latent, extra=kind)


def write_examples(path: Path, source: Source, records: list[dict], meta: dict) -> None:
    """The compact file shipped beside a dictionary's weights (engine/latent_book.py)."""
    doc = {"source": source.name, "hook_name": source.hook_name, "kinds": list(KINDS),
           "hist_edges": HIST_EDGES, **meta, "latents": records}  # fmt: skip
    write_doc(path, doc)


read_examples = read_doc
