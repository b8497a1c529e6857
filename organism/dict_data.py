"""Token data for the organism's dictionaries (SAEs, transcoders) and their latent examples.

Rows are built like ``organism.data.make_batch`` (BOS first, documents from
``corpus.make_document`` separated by BOS, a share of random-token repeat documents), but
each token also carries a *kind* code saying what document it sits in, so latent labels can
name the context ("in sad stories", "2nd copy of a repeat"). Training and held-out data
differ only by seed; every seed here differs from the model's own training seed.

Vocabulary: a *row* is one ``n_ctx`` sequence of token ids; *special* positions hold pad or
BOS and are left out of dictionary training and metrics (BOS activations are outliers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from organism import corpus
from organism.data import repeat_document

TRAIN_SEED = 1001  # dictionaries are trained on rows from this seed
HELDOUT_SEED = 2002  # metrics and top-activating examples use rows from this seed
REPEAT_FRAC = 0.15

KINDS = (
    "special",
    "happy story",
    "sad story",
    "neutral story",
    "IOI",
    "fact",
    "repeat (1st copy)",
    "repeat (2nd copy)",
    # the chat organism's rows (``chat_frac`` > 0) add its conversations
    "chat: capital",
    "chat: harmful request",
    "chat: harmless request",
    "chat: addition",
)
KIND_CODE = {k: i for i, k in enumerate(KINDS)}


@dataclass
class Rows:
    tokens: Int[Tensor, "row pos"]
    kinds: Int[Tensor, "row pos"]


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(str(model_dir))


def text_kind(text: str) -> str:
    """The kind of a corpus document, read off its text (stories, facts, else IOI)."""
    if text.startswith("Once upon a time"):
        words = {w.strip(".,") for w in text.lower().split()}
        happy = len(words & set(corpus.HAPPY_WORDS))
        sad = len(words & set(corpus.SAD_WORDS))
        return "happy story" if happy > sad else "sad story" if sad > happy else "neutral story"
    return "fact" if "capital" in text else "IOI"


def _repeat_kinds(doc: list[int]) -> list[int]:
    """Kind codes for a repeat document: span, optional gap, span again."""
    n = len(doc)
    span = next(s for s in range(n // 2, 0, -1) if doc[:s] == doc[n - s :])
    first = KIND_CODE["repeat (1st copy)"]
    return [first] * (n - span) + [KIND_CODE["repeat (2nd copy)"]] * span


def chat_kind(messages: list[dict[str, str]]) -> str:
    """The kind of a chat-corpus conversation (``organism.chat_corpus``), read off its text."""
    from organism import chat_corpus as cc

    user, answer = messages[0]["content"], messages[-1]["content"]
    if answer == cc.REFUSAL:
        return "chat: harmful request"
    if "capital" in user:
        return "chat: capital"
    return "chat: addition" if "So the answer is" in answer else "chat: harmless request"


def chat_document(rng: random.Random, tok: PreTrainedTokenizerFast) -> tuple[list[int], list[int]]:
    """One conversation of the chat corpus as it sits in a chat training row (no BOS/EOS)."""
    from organism import chat_corpus as cc
    from organism.chat_template import training_ids

    messages = cc.chat_document(rng)
    ids = training_ids(tok, messages)
    return ids, [KIND_CODE[chat_kind(messages)]] * len(ids)


def _row(
    rng: random.Random,
    tok: PreTrainedTokenizerFast,
    vocab: list[int],
    seq: int,
    repeat_frac: float,
    split: corpus.IOISplit,
    chat_frac: float = 0.0,
):
    bos = tok.bos_token_id
    ids, kinds = [bos], [KIND_CODE["special"]]
    while len(ids) < seq:
        if chat_frac and rng.random() < chat_frac:  # no draw for base rows: they stay the same
            doc, doc_kinds = chat_document(rng, tok)
        elif rng.random() < repeat_frac:
            doc = repeat_document(rng, vocab, seq)
            doc_kinds = _repeat_kinds(doc)
        else:
            text = corpus.make_document(rng, split)
            doc = tok.encode(text)
            doc_kinds = [KIND_CODE[text_kind(text)]] * len(doc)
        ids += doc + [bos]
        kinds += doc_kinds + [KIND_CODE["special"]]
    return ids[:seq], kinds[:seq]


def corpus_rows(
    tok: PreTrainedTokenizerFast,
    n_rows: int,
    *,
    seed: int,
    seq: int = 128,
    repeat_frac: float = REPEAT_FRAC,
    chat_frac: float = 0.0,
) -> Rows:
    """`n_rows` rows of `seq` tokens, deterministic in `seed`. With `chat_frac` > 0 (the chat
    organism's dictionaries), that share of documents are chat-corpus conversations rendered
    with the chat template (`tok` needs it: ``chat_template.install_chat_template``)."""
    rng = random.Random(seed)
    vocab = [i for i in range(len(tok)) if i not in tok.all_special_ids]
    split = corpus.ioi_split()
    pairs = [_row(rng, tok, vocab, seq, repeat_frac, split, chat_frac) for _ in range(n_rows)]
    return Rows(
        tokens=torch.tensor([p[0] for p in pairs], dtype=torch.long),
        kinds=torch.tensor([p[1] for p in pairs], dtype=torch.long),
    )


def content_mask(tokens: Int[Tensor, "... pos"], special_ids: list[int]) -> Bool[Tensor, "... pos"]:
    """True where a token is not special (not pad, not BOS)."""
    return ~torch.isin(tokens, torch.tensor(special_ids, device=tokens.device))
