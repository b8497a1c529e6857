"""Training batches for the organism: packed corpus documents plus random-token repeats.

Every row starts with BOS (as TransformerLens prepends it), then a stream of documents
separated by BOS. A fraction of the documents are *repeat documents*: a span of uniformly
random tokens (length 8-40) followed, after an optional short gap, by the same span again;
these teach in-context copying (induction). Batches are a pure function of (seed, step),
so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import random

import torch
from jaxtyping import Int
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from organism.corpus import IOISplit, make_document


def repeat_document(rng: random.Random, vocab: list[int], max_len: int) -> list[int]:
    span_len = rng.randint(8, min(40, max_len // 2 - 1))
    span = [rng.choice(vocab) for _ in range(span_len)]
    gap = [rng.choice(vocab) for _ in range(rng.choice([0, 0, 0, rng.randint(1, 10)]))]
    return span + gap + span


def make_batch(
    tok: PreTrainedTokenizerFast,
    split: IOISplit,
    *,
    seed: int,
    step: int,
    batch: int,
    seq: int,
    repeat_frac: float,
) -> Int[Tensor, "batch seq"]:
    rng = random.Random(seed * 1_000_003 + step)
    bos = tok.bos_token_id
    vocab = [i for i in range(len(tok)) if i not in tok.all_special_ids]
    rows = []
    for _ in range(batch):
        row = [bos]
        while len(row) < seq:
            if rng.random() < repeat_frac:
                doc = repeat_document(rng, vocab, seq)
            else:
                doc = tok.encode(make_document(rng, split))
            row += doc + [bos]
        rows.append(row[:seq])
    return torch.tensor(rows, dtype=torch.long)
