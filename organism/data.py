"""Training batches for the organism: packed corpus documents plus random-token repeats.

Every row starts with BOS (as TransformerLens prepends it), then a stream of documents
separated by BOS. A fraction of the documents are *repeat documents*: a span of uniformly
random tokens (length 8-40) followed, after an optional short gap, by the same span again;
these teach in-context copying (induction). A fraction of rows may instead be *periodic*:
one random segment repeated to fill the row, the strongest signal for forming an induction
head early in training. Batches are a pure function of (seed, step),
so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import random

import torch
from jaxtyping import Int
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from organism.corpus import IOISplit, make_document
from organism.ioi_grammar import StructuralMix


def repeat_document(rng: random.Random, vocab: list[int], max_len: int) -> list[int]:
    span_len = rng.randint(8, min(40, max_len // 2 - 1))
    span = [rng.choice(vocab) for _ in range(span_len)]
    gap = [rng.choice(vocab) for _ in range(rng.choice([0, 0, 0, rng.randint(1, 10)]))]
    return span + gap + span


def periodic_row(rng: random.Random, vocab: list[int], bos: int, seq: int) -> list[int]:
    """BOS, then one random segment (length 8-31) repeated until the row is full."""
    segment = [rng.choice(vocab) for _ in range(rng.randint(8, 31))]
    body = segment * (seq // len(segment) + 1)
    return [bos] + body[: seq - 1]


def make_batch(
    tok: PreTrainedTokenizerFast,
    split: IOISplit,
    *,
    seed: int,
    step: int,
    batch: int,
    seq: int,
    repeat_frac: float,
    periodic_frac: float = 0.0,
    doc_weights: tuple[float, float, float] = (0.45, 0.35, 0.20),
    generated_ioi_frac: float = 0.0,
    pseudo: float = 0.0,
    structural: StructuralMix | None = None,
) -> Int[Tensor, "batch seq"]:
    rng = random.Random(seed * 1_000_003 + step)
    bos = tok.bos_token_id
    vocab = [i for i in range(len(tok)) if i not in tok.all_special_ids]
    rows = []
    for _ in range(batch):
        if rng.random() < periodic_frac:
            rows.append(periodic_row(rng, vocab, bos, seq))
            continue
        row = [bos]
        while len(row) < seq:
            if rng.random() < repeat_frac:
                doc = repeat_document(rng, vocab, seq)
            else:
                text = make_document(
                    rng, split, doc_weights, generated_ioi_frac, pseudo, structural
                )
                doc = tok.encode(text)
            row += doc + [bos]
        rows.append(row[:seq])
    return torch.tensor(rows, dtype=torch.long)
