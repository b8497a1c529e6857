"""Short, deterministic labels for latents, derived offline from their top-activating examples.

The label names what the examples share at their maximum: the token itself when one token
dominates (``'Paris'``), else a word class of the corpus when one covers most max tokens
(``names``, ``capitals``, ``sad words``), else the token before it (``after ' the'``), else
the commonest max tokens (``' a', ' the', ' to'…``); then the kind of document when one
dominates (``in sad stories``). A latent with no positive example is ``dead``.
"""

from __future__ import annotations

from collections import Counter

from organism import corpus
from organism.dict_data import KINDS

TOKEN_SHARE = 0.5  # share of examples that must agree on the max token
SECOND_SHARE = 0.2  # a runner-up token this common is named too
KIND_SHARE = 0.6  # share of examples that must sit in one kind of document

KIND_PHRASE = {
    "happy story": "in happy stories",
    "sad story": "in sad stories",
    "neutral story": "in neutral stories",
    "IOI": "in IOI sentences",
    "fact": "in capital facts",
    "repeat (1st copy)": "in random tokens (1st copy)",
    "repeat (2nd copy)": "in repeated tokens (2nd copy)",
}


WORD_CLASSES = {
    "names": set(corpus.NAMES),
    "countries": set(corpus.COUNTRIES),
    "capitals": {w for c in corpus.COUNTRIES.values() for w in c.split()},
    "happy words": set(corpus.HAPPY_WORDS),
    "sad words": set(corpus.SAD_WORDS),
    "places": set(corpus.PLACES),
    "objects": set(corpus.OBJECTS),
}


def word_class(tokens: list[str]) -> str | None:
    """The class of corpus words that most of `tokens` belong to, if any."""
    words = [t.strip() for t in tokens]
    for name, members in WORD_CLASSES.items():
        if sum(w in members for w in words) / len(words) >= TOKEN_SHARE:
            return name
    return None


def show(token: str) -> str:
    """A token for a label: quoted, whitespace made visible."""
    return "'" + token.replace("\n", "\\n") + "'"


def _token_part(examples: list[dict], vocab: list[str]) -> str:
    n = len(examples)
    max_tokens = [vocab[ex["tokens"][ex["max_pos"]]] for ex in examples]
    at_max = Counter(max_tokens).most_common(3)
    (tok, count), rest = at_max[0], at_max[1:]
    if count / n >= TOKEN_SHARE:
        if rest and rest[0][1] / n >= SECOND_SHARE:
            return f"{show(tok)} / {show(rest[0][0])}"
        return show(tok)
    if cls := word_class(max_tokens):
        return cls
    before = [ex for ex in examples if ex["max_pos"] > 0]
    prev = Counter(vocab[ex["tokens"][ex["max_pos"] - 1]] for ex in before).most_common(1)
    if prev and prev[0][1] / n >= TOKEN_SHARE:
        return f"after {show(prev[0][0])}"
    return ", ".join(show(t) for t, _ in at_max) + "…"


def _kind_part(examples: list[dict]) -> str:
    kind, count = Counter(KINDS[ex["kind"]] for ex in examples).most_common(1)[0]
    if count / len(examples) >= KIND_SHARE and kind in KIND_PHRASE:
        return " " + KIND_PHRASE[kind]
    return ""


def label_latent(examples: list[dict], vocab: list[str]) -> str:
    """The label of one latent from its examples (``tokens``, ``max_pos``, ``kind`` each)."""
    if not examples:
        return "dead"
    return _token_part(examples, vocab) + _kind_part(examples)
