"""Short, deterministic labels for the organism's latents, from their top-activating examples.

The labeller is the engine's (``engine.latent_book.label_latent``: the token itself when one
token dominates, ``'Paris'``, else a word class, else the token before it, ``after ' the'``,
else the commonest max tokens); the organism adds the word classes of its corpus (``names``,
``capitals``, ``sad words``) and the kind of document when one dominates (``in sad
stories``). A latent with no positive example is ``dead``.
"""

from __future__ import annotations

from collections import Counter

from engine import latent_book
from organism import corpus
from organism.dict_data import KINDS

KIND_SHARE = 0.6  # share of examples that must sit in one kind of document

KIND_PHRASE = {
    "happy story": "in happy stories",
    "sad story": "in sad stories",
    "neutral story": "in neutral stories",
    "IOI": "in IOI sentences",
    "fact": "in capital facts",
    "repeat (1st copy)": "in random tokens (1st copy)",
    "repeat (2nd copy)": "in repeated tokens (2nd copy)",
    "chat: capital": "in capital questions (chat)",
    "chat: harmful request": "in harmful requests (chat)",
    "chat: harmless request": "in harmless requests (chat)",
    "chat: addition": "in additions (chat)",
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


def _kind_part(examples: list[dict]) -> str:
    kind, count = Counter(KINDS[ex["kind"]] for ex in examples).most_common(1)[0]
    if count / len(examples) >= KIND_SHARE and kind in KIND_PHRASE:
        return " " + KIND_PHRASE[kind]
    return ""


def label_latent(examples: list[dict], vocab: list[str]) -> str:
    """The label of one latent from its examples (``tokens``, ``max_pos``, ``kind`` each):
    engine/latent_book.py's labeller with the corpus's word classes and document kinds."""
    return latent_book.label_latent(examples, vocab, classes=WORD_CLASSES, context=_kind_part)
