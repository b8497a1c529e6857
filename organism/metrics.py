"""Measurements of the organism's phenomena, shared by training logs, the model card and tests.

Each metric takes a ``Runner``: a function from token ids ``[batch, pos]`` to
``(logits [batch, pos, vocab], patterns [layer, batch, head, query_pos, key_pos])``, so the
same code measures a Hugging Face model during training and a TransformerLens model in tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from organism import corpus

Runner = Callable[
    [Int[Tensor, "batch pos"]],
    tuple[Float[Tensor, "batch pos vocab"], Float[Tensor, "layer batch head q k"] | None],
]


@dataclass
class InductionResult:
    first_copy_loss: float
    second_copy_loss: float
    head_scores: list[list[float]]  # [layer][head]: mean attention to the induction position

    @property
    def best_head(self) -> tuple[int, int, float]:
        return max(
            (
                (layer, h, s)
                for layer, row in enumerate(self.head_scores)
                for h, s in enumerate(row)
            ),
            key=lambda t: t[2],
        )


def random_repeats(
    vocab_ids: list[int], bos: int, *, n: int = 32, span: int = 40, seed: int = 1234
) -> Int[Tensor, "n pos"]:
    """BOS + a random span + the same span again, ``n`` rows (held-out: seeded apart from training)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        s = [rng.choice(vocab_ids) for _ in range(span)]
        rows.append([bos] + s + s)
    return torch.tensor(rows)


@torch.no_grad()
def induction(run: Runner, tokens: Int[Tensor, "n pos"]) -> InductionResult:
    span = (tokens.shape[1] - 1) // 2
    logits, patterns = run(tokens)
    logp = logits.log_softmax(-1)[:, :-1]
    nll = -logp.gather(-1, tokens[:, 1:, None])[..., 0]  # predicts token at pos+1
    first = nll[:, 1:span].mean().item()  # predictions of first-copy tokens 2..span
    second = nll[:, span + 1 :].mean().item()  # predictions of second-copy tokens 2..span
    scores: list[list[float]] = []
    if patterns is not None:
        q = torch.arange(span + 1, 2 * span + 1)
        k = q - span + 1  # the token after the earlier occurrence of the current token
        scores = patterns[:, :, :, q, k].mean(dim=(1, 3)).tolist()
    return InductionResult(first, second, scores)


def _first_token(tok, text: str) -> int:
    return tok.encode(text)[0]


@torch.no_grad()
def top1_accuracy(run: Runner, tok, prompts: list[str], answers: list[str]) -> float:
    """Fraction of prompts whose top-1 next token is the first token of the answer."""
    hits = 0
    for i in range(0, len(prompts), 64):
        batch_p, batch_a = prompts[i : i + 64], answers[i : i + 64]
        enc = [[tok.bos_token_id] + tok.encode(p) for p in batch_p]
        width = max(map(len, enc))
        ids = torch.full((len(enc), width), tok.pad_token_id)
        for r, e in enumerate(enc):
            ids[r, : len(e)] = torch.tensor(e)  # right-pad; read the logit at the last real pos
        logits, _ = run(ids)
        last = torch.tensor([len(e) - 1 for e in enc])
        pred = logits[torch.arange(len(enc)), last].argmax(-1)
        gold = torch.tensor([_first_token(tok, " " + a) for a in batch_a])
        hits += (pred == gold).sum().item()
    return hits / len(prompts)


def ioi_cases(
    held_out_pairs: bool,
    held_out_templates: bool,
    n: int = 200,
    seed: int = 7,
    templates: tuple[str, ...] | None = None,
) -> tuple[list[str], list[str]]:
    split = corpus.ioi_split()
    pairs = split.heldout_pairs if held_out_pairs else split.train_pairs
    if templates is None:
        templates = (
            corpus.IOI_HELDOUT_TEMPLATES if held_out_templates else corpus.IOI_TRAIN_TEMPLATES
        )
    rng = random.Random(seed)
    prompts, answers = [], []
    for _ in range(n):
        a, b = rng.choice(pairs)
        io, s = (a, b) if rng.random() < 0.5 else (b, a)
        prompts.append(
            corpus.ioi_prompt(
                rng.choice(templates),
                io,
                s,
                rng.choice(corpus.PLACES),
                rng.choice(corpus.OBJECTS),
                rng.random() < 0.5,
            )
        )
        answers.append(io)
    return prompts, answers


def fact_cases() -> tuple[list[str], list[str]]:
    countries = list(corpus.COUNTRIES)
    return [corpus.FACT_PROMPT.format(country=c) for c in countries], [
        corpus.COUNTRIES[c] for c in countries
    ]


def sentiment_counts(text: str) -> tuple[int, int]:
    words = [w.strip(".,!?").lower() for w in text.split()]
    return sum(w in corpus.HAPPY_WORDS for w in words), sum(w in corpus.SAD_WORDS for w in words)


def sentiment_prompts(n: int = 40, seed: int = 11) -> list[tuple[str, str]]:
    """(mood, opening sentence) pairs; moods alternate happy / sad."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        mood = "happy" if i % 2 == 0 else "sad"
        adj = rng.choice(corpus._MOOD[mood]["adj"])
        opening = corpus.story_opening(
            mood, rng.choice(corpus.NAMES), rng.choice(corpus.NOUNS), adj
        )
        out.append((mood, opening))
    return out


def sentiment_match(generate: Callable[[str, int], str], n: int = 40) -> float:
    """Fraction of openings whose continuation has more words of the opening's mood.

    ``generate(prompt, seed)`` returns the continuation text only.
    """
    hits = 0
    for i, (mood, opening) in enumerate(sentiment_prompts(n)):
        happy, sad = sentiment_counts(generate(opening, i))
        hits += (happy > sad) if mood == "happy" else (sad > happy)
    return hits / n


def ioi_order_cases(
    template: str, abba: bool, n: int = 32, seed: int = 7, held_out_pairs: bool = True
) -> tuple[list[str], list[str]]:
    """``n`` prompts of one template in one order (ABBA: the answer is the first-mentioned)."""
    split = corpus.ioi_split()
    pairs = split.heldout_pairs if held_out_pairs else split.train_pairs
    rng = random.Random(seed)
    prompts, answers = [], []
    for _ in range(n):
        a, b = rng.choice(pairs)
        io, s = (a, b) if rng.random() < 0.5 else (b, a)
        place, obj = rng.choice(corpus.PLACES), rng.choice(corpus.OBJECTS)
        prompts.append(corpus.ioi_prompt(template, io, s, place, obj, abba))
        answers.append(io)
    return prompts, answers


def ioi_by_order(run: Runner, tok, templates, n: int = 32) -> dict[str, dict[str, float]]:
    """Top-1 IOI accuracy per template, ABBA and BABA orders separately (held-out pairs)."""
    return {
        t: {
            order: top1_accuracy(run, tok, *ioi_order_cases(t, order == "ABBA", n=n))
            for order in ("ABBA", "BABA")
        }
        for t in templates
    }


def worst_order_accuracy(by_order: dict[str, dict[str, float]]) -> float:
    """The lowest accuracy over every template and order (the bar is on each separately)."""
    return min(min(v.values()) for v in by_order.values())
