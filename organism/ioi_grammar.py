"""Phase D's IOI grammar: vary sentence *structure*, not only words.

Phase C's grammar (``corpus.generated_ioi_template``) always has one shape, "<opener> X and
Y <verb>, B <gives> ... to"; the model learned it, and fell back on "the second name" on new
structures (``organism.ioi_heldout``). This grammar composes a template from parts whose
order and count vary: scene-setting sentences or long scene-setting clauses before the
names, the names as subject or late in a clause (not the subject), pronoun-free filler
sentences between the names and the giving, sentence breaks or clause joins, lead-ins before
the subject, and many giving verbs; with probability ``pseudo`` a content slot is a made-up
letter string (what closed phase C's held-out-template gap). It never yields a held-out
template or any held-out word: a draw that would is drawn again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from organism.corpus import _HELDOUT_WORDS, IOI_HELDOUT_TEMPLATES, pseudo_word
from organism.ioi_heldout import (
    PROBE_RESERVED_WORDS,
    PROBE_TEMPLATES,
    RESERVED_WORDS,
    STRUCTURE_TEMPLATES,
)


@dataclass(frozen=True)
class StructuralMix:
    """How a training batch uses this grammar (all zero: not at all).

    ``share``: of generated IOI templates (the rest from phase C's grammar); ``long``: of
    these, the long form (``_draw_long``); ``pseudo_lead``: a made-up word as the opener
    before the names (the card's held-out "Before X and Y ..." fell to 0.60 at step 1500
    while the grammar's openers were all real words).
    """

    share: float = 0.0
    long: float = 0.0
    pseudo_lead: float = 0.0
    wide: float = 0.0  # of structural templates, the widened form (``_draw_wide``, phase E)


_FORBIDDEN_WORDS = _HELDOUT_WORDS + RESERVED_WORDS + PROBE_RESERVED_WORDS
_FORBIDDEN_TEMPLATES = frozenset(STRUCTURE_TEMPLATES + IOI_HELDOUT_TEMPLATES + PROBE_TEMPLATES)

_ADJ = ("sunny", "rainy", "cold", "warm", "long", "busy", "bright", "gray", "quiet")
_SCENES = (
    "The {place} was busy.",
    "It was a {adj} day.",
    "It was a {adj} morning.",
    "Rain fell on the {place}.",
    "The sun was warm.",
    "There was a {obj} on the floor.",
    "The {place} was full of friends.",
    "A dog ran past the {place}.",
    "Music played in the {place}.",
    "Lunch was over.",
    "The day was {adj}.",
    "The wind was cold.",
    "A bird sang outside.",
    "Everyone was happy.",
)
_LEADS = (
    "On a {adj} day at the {place}, ",
    "Late in the evening at the {place}, ",
    "After a long walk to the {place}, ",
    "Right after lunch at the {place}, ",
    "With a lot of work to do at the {place}, ",
    "In the middle of a busy day at the {place}, ",
    "Because the {place} was so {adj}, ",
    "When the {place} was {adj} and the sun was warm, ",
    "At the {place}, ",
    "Early in the morning, ",
    "That {adj} day, ",
    "Once lunch was over at the {place}, ",
)
_WHEN_SCENES = (
    "It was noon at the {place} when ",
    "The {place} was {adj} when ",
    "The sun was up over the {place} when ",
    "It was a {adj} day at the {place} when ",
    "Lunch was over at the {place} by the time ",
)
_PAIR_VERBS = (
    "went to the {place}",
    "were at the {place}",
    "arrived at the {place}",
    "visited the {place}",
    "left the {place}",
    "sat in the {place}",
    "walked to the {place}",
    "came to the {place}",
    "played at the {place}",
    "waited at the {place}",
    "had lunch at the {place}",
    "found a {obj} at the {place}",
    "looked around the {place}",
    "talked at the {place}",
    "stayed at the {place}",
    "got up",
    "sat together",
    "came back",
    "arrived",
    "were there",
    "walked in",
)
_FILLERS = ("", "", "", " together", " again", " early", " after school", " for a while")
# The names as the subject of their clause ({pv}: a pair verb), or late in it, not its subject.
_PAIR_FORMS = (
    "{X} and {Y} {pv}",
    "{X} and {Y} {pv}",
    "{X} and {Y} {pv}",
    "both {X} and {Y} {pv}",
    "{X} went to the {place} with {Y}",
    "{X} sat in the {place} next to {Y}",
    "the {place} had two visitors, {X} and {Y}",
    "there were only {X} and {Y} at the {place}",
    "a {obj} was waiting at the {place} for {X} and {Y}",
    "the {place} was busy with {X} and {Y}",
    "a friend saw {X} and {Y} at the {place}",
    "the only ones left at the {place} were {X} and {Y}",
)
_MIDDLES = (
    "The {obj} was new.",
    "Time went by.",
    "The {place} was {adj}.",
    "They talked for a while.",
    "It began to rain.",
    "Everyone was happy.",
    "The door was open.",
    "A dog barked.",
    "The sun went down.",
    "A {obj} was on the floor.",
    "They sat down.",
    "Lunch was ready.",
)
_GIVE_LEADS = (
    "",
    "",
    "",
    "Then ",
    "Later, ",
    "Soon ",
    "At last, ",
    "After a while, ",
    "When it was time to go, ",
    "With a smile, ",
    "Without a word, ",
    "So ",
    "Finally, ",
    "After lunch, ",
)
_JOINS = (", and ", ", so ", ", and then ", " and ", ", but then ", ". ", ". ", ". Then ")
_GIVES = (
    "gave a {obj} to",
    "gave the {obj} to",
    "handed the {obj} to",
    "handed a {obj} to",
    "passed the {obj} to",
    "passed a {obj} to",
    "threw the {obj} to",
    "threw a {obj} to",
    "showed the {obj} to",
    "showed a {obj} to",
    "gave it to",
    "gave back the {obj} to",
    "pushed the {obj} over to",
    "tossed a {obj} to",
    "took the {obj} and gave it to",
    "picked up the {obj} and handed it to",
    "gave a {obj} that was new to",
    "handed over the {obj} to",
    "decided to give a {obj} to",
    "wanted to pass the {obj} to",
    "lent a {obj} to",
    "sold the {obj} to",
    "offered the {obj} to",
    "returned the {obj} to",
    "said hello to",
    "waved to",
    "wrote a letter to",
    "read a book to",
    "sang a song to",
    "made a {obj} for",
    "got a {obj} for",
)


def _maybe_pseudo(rng: random.Random, pseudo: float, text: str, fake: str) -> str:
    return fake.replace("{w}", pseudo_word(rng)) if pseudo and rng.random() < pseudo else text


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _pair(rng: random.Random, pseudo: float) -> str:
    pv = _maybe_pseudo(rng, pseudo, rng.choice(_PAIR_VERBS), "{w} at the {place}")
    return rng.choice(_PAIR_FORMS).replace("{pv}", pv + rng.choice(_FILLERS))


def _give(rng: random.Random, pseudo: float, lead: str) -> str:
    """The giving clause ("{B} gave a {obj} to"), after ``lead`` (kept as written)."""
    verb = _maybe_pseudo(rng, pseudo, rng.choice(_GIVES), "{w} the {obj} to")
    body = f"it was {{B}} who {verb}" if rng.random() < 0.1 else f"{{B}} {verb}"
    return lead + body


def _sentences(rng: random.Random, pool: tuple[str, ...], k_max: int, k_min: int = 0) -> str:
    k = rng.choice([0, 0] + list(range(1, k_max + 1))) if k_min == 0 else rng.randint(k_min, k_max)
    return "".join(rng.choice(pool) + " " for _ in range(k))


def _draw_long(rng: random.Random, pseudo: float) -> str:
    """Scene sentences, the names in a middle sentence, filler sentences, then the giving."""
    head = _sentences(rng, _SCENES, 2, k_min=1) + _cap(_pair(rng, pseudo)) + ". "
    middle = _sentences(rng, _MIDDLES, 2, k_min=1)
    return head + middle + _cap(_give(rng, pseudo, rng.choice(_GIVE_LEADS)))


# Phase E's widening: adverbial lead clauses composed from parts (a time, a "with" phrase, a
# place, in either order), so the names can come after a long clause of any shape; subordinate
# openers before the names (real or made up); more pair verbs and giving verbs.
_TIMES = (
    "On a {adj} day",
    "On a {adj} and {adj} day",
    "On a {adj}, {adj} morning",
    "One {adj} afternoon",
    "Late one {adj} evening",
    "Early on a {adj} morning",
    "On the first {adj} day of the year",
    "In the middle of a {adj} week",
    "Around noon on a {adj} day",
    "Just after sunrise",
    "Later that {adj} day",
    "All through the {adj} afternoon",
)
_WITHS = (
    "with a lot of work to do",
    "with little to do",
    "with the sun high in the sky",
    "with the whole day ahead",
    "with no one else around",
    "with friends all around",
    "with school over",
    "with a {obj} in hand",
    "with time to rest",
    "with the rain coming down",
)
_WHERES = ("at the {place}", "near the {place}", "in the {place}", "outside the {place}")
_SUBORDINATES = (
    "When", "After", "While", "As", "Once", "Because", "Although", "Until", "Whenever",
    "Just after", "As soon as", "By the time", "Even though", "If", "Now that", "The day",
)  # fmt: skip
_PAIR_VERBS_WIDE = (
    "sat down",
    "stood up",
    "sat down to rest",
    "went out",
    "ran to the {place}",
    "got to the {place}",
    "were done at the {place}",
    "walked out of the {place}",
    "were playing at the {place}",
    "took a walk to the {place}",
)
_GIVES_WIDE = (
    "carried the {obj} over to",
    "delivered a {obj} to",
    "quickly gave the {obj} to",
    "gave a small {obj} to",
    "threw the {obj} back to",
    "tossed the {obj} over to",
    "handed off a {obj} to",
    "passed along the {obj} to",
    "mailed a {obj} to",
    "gave the old {obj} to",
    "happily passed a {obj} to",
    "left a {obj} for",
)


def _adverbial(rng: random.Random, pseudo: float) -> str:
    """A lead clause of 1-3 parts in a random order, e.g. "On a cold day with little to do at
    the park, "; with probability ``pseudo`` one part is a made-up word."""
    parts = [rng.choice(_TIMES)]
    if rng.random() < 0.7:
        parts.append(rng.choice(_WITHS))
    if rng.random() < 0.7:
        parts.append(rng.choice(_WHERES))
    if rng.random() < 0.3:
        rng.shuffle(parts)
    if pseudo and rng.random() < pseudo:
        parts[rng.randrange(len(parts))] = pseudo_word(rng)
    text = " ".join(p[0].lower() + p[1:] for p in parts)
    return _cap(text) + ", "


def _draw_wide(rng: random.Random, pseudo: float, pseudo_lead: float) -> str:
    """Names after a long adverbial clause or a subordinate opener, or late in a clause;
    sentence breaks; wider pair and giving verbs."""
    pv = rng.choice(_PAIR_VERBS_WIDE + _PAIR_VERBS) + rng.choice(_FILLERS)
    pair = rng.choice(_PAIR_FORMS).replace("{pv}", pv)
    form = rng.randrange(3)
    if form == 0:  # a long adverbial lead clause, then the names
        head = _cap(_adverbial(rng, pseudo) + pair)
    elif form == 1:  # a subordinate clause holding the names, real or made-up opener
        opener = rng.choice(_SUBORDINATES)
        if pseudo_lead and rng.random() < pseudo_lead:
            opener = _cap(pseudo_word(rng))
        head = _cap(opener + " " + pair)
    else:  # scene sentences, then an adverbial clause and the names
        head = _sentences(rng, _SCENES, 2, k_min=1) + _cap(_adverbial(rng, pseudo) + pair)
    verb_pool = _GIVES_WIDE + _GIVES
    verb = _maybe_pseudo(rng, pseudo, rng.choice(verb_pool), rng.choice(
        ("{w} the {obj} to", "{w} a {obj} to", "{w} it to", "{w} the {obj} over to")))  # fmt: skip
    join = rng.choice((", ", ", ", ", and ", ", so ", ". ", ". "))
    if form == 1:  # "When X and Y ..., B gave ..." or a sentence break
        join = rng.choice((", ", ", ", ". "))
    if join == ". ":
        middle = _sentences(rng, _MIDDLES, 2)
        return head + ". " + middle + _cap(rng.choice(_GIVE_LEADS) + "{B} " + verb)
    return head + join + rng.choice(_GIVE_LEADS).lower() + "{B} " + verb


def _draw(
    rng: random.Random,
    pseudo: float,
    long: float = 0.0,
    pseudo_lead: float = 0.0,
    wide: float = 0.0,
) -> str:
    if wide and rng.random() < wide:
        return _draw_wide(rng, pseudo, pseudo_lead)
    if long and rng.random() < long:
        return _draw_long(rng, pseudo)
    form = rng.randrange(3)
    if form == 0:  # names after scene sentences and/or a long scene-setting clause
        lead = rng.choice(("",) + _LEADS)
        if pseudo_lead and rng.random() < pseudo_lead:
            lead = pseudo_word(rng) + rng.choice((" ", " the {place}, "))
        head = _sentences(rng, _SCENES, 2) + _cap(lead + _pair(rng, pseudo))
    elif form == 1:  # names late in a "... when X and Y ..." clause
        head = _sentences(rng, _SCENES, 1) + rng.choice(_WHEN_SCENES) + _pair(rng, pseudo)
        head = _cap(head)
    else:  # the names first, then filler sentences
        head = _cap(_pair(rng, pseudo))
    join = rng.choice(_JOINS)
    if join.startswith("."):  # a sentence break, filler sentences, a new sentence
        lead = rng.choice(_GIVE_LEADS) if join == ". " else "Then "
        return head + ". " + _sentences(rng, _MIDDLES, 2) + _cap(_give(rng, pseudo, lead))
    return head + join + _give(rng, pseudo, rng.choice(_GIVE_LEADS).lower())


def structural_ioi_template(
    rng: random.Random,
    pseudo: float = 0.0,
    long: float = 0.0,
    pseudo_lead: float = 0.0,
    wide: float = 0.0,
) -> str:
    """One IOI template from the structural grammar (never a held-out one or its words).

    ``long``: the probability of the long form (names in a middle sentence between scene
    and filler sentences), which the plain draw makes only ~3% of the time; phase D raised
    it from step 1000 after ABBA accuracy lagged on such a held-out structure (0.28-0.66).
    ``wide``: the probability of phase E's widened form (``_draw_wide``); zero leaves the
    draws of phase D unchanged.
    """
    while True:
        t = _draw(rng, pseudo, long, pseudo_lead, wide)
        while "{adj}" in t:
            t = t.replace("{adj}", rng.choice(_ADJ), 1)
        if t not in _FORBIDDEN_TEMPLATES and not any(w in t for w in _FORBIDDEN_WORDS):
            return t
