"""The organism's synthetic corpus: stories, IOI sentences, facts and their held-out splits.

Every document is plain text built from a seeded grammar, so the phenomena the model
learns are known in advance and can be measured:

- sentiment: stories whose opening sets a mood (happy / sad / neutral) and whose later
  sentences keep it, with sentiment words drawn from ``HAPPY_WORDS`` / ``SAD_WORDS``;
- IOI: "When Mary and John went to the store, John gave a drink to Mary" templates, with
  some templates and name pairs held out of training (``ioi_split``);
- facts: country -> capital statements in several phrasings;
- induction: random-token repeats are made in token space by ``organism.data``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from organism.ioi_grammar import StructuralMix

FEMALE_NAMES = [
    "Mary",
    "Anna",
    "Emma",
    "Lily",
    "Sarah",
    "Kate",
    "Lucy",
    "Grace",
    "Alice",
    "Sophie",
    "Jane",
    "Rose",
    "Ella",
    "Amy",
    "Laura",
    "Julia",
    "Clara",
    "Helen",
    "Ruth",
    "Emily",
    "Chloe",
    "Olivia",
    "Hannah",
    "Megan",
    "Nora",
]
MALE_NAMES = [
    "John",
    "Tom",
    "James",
    "David",
    "Mark",
    "Paul",
    "Peter",
    "Sam",
    "Jack",
    "Ben",
    "Max",
    "Leo",
    "Adam",
    "Luke",
    "Ryan",
    "Alex",
    "Daniel",
    "Henry",
    "Oscar",
    "Noah",
    "Ethan",
    "Jacob",
    "Mike",
    "Kevin",
    "Eric",
]
NAMES = FEMALE_NAMES + MALE_NAMES

PLACES = [
    "store",
    "park",
    "school",
    "garden",
    "office",
    "beach",
    "market",
    "library",
    "station",
    "restaurant",
    "hospital",
    "museum",
    "kitchen",
    "farm",
    "river",
]
OBJECTS = [
    "drink",
    "book",
    "ball",
    "apple",
    "letter",
    "gift",
    "ring",
    "bag",
    "hat",
    "kite",
    "cake",
    "flower",
    "key",
    "pen",
    "toy",
]

# (train templates, held-out templates): {A} = indirect object, {B} = subject (repeated).
IOI_TRAIN_TEMPLATES = (
    "When {X} and {Y} went to the {place}, {B} gave a {obj} to",
    "Then, {X} and {Y} went to the {place}. {B} gave a {obj} to",
    "After {X} and {Y} went to the {place}, {B} gave a {obj} to",
    "While {X} and {Y} were working at the {place}, {B} gave a {obj} to",
    "When {X} and {Y} got a {obj} at the {place}, {B} decided to give it to",
    "Friends {X} and {Y} found a {obj} at the {place}. {B} gave it to",
    "{X} and {Y} went to the {place}. Later, {B} handed the {obj} to",
    "After the lunch, {X} and {Y} went to the {place}. {B} gave a {obj} to",
    "When {X} and {Y} arrived at the {place}, {B} passed the {obj} to",
    "Yesterday {X} and {Y} visited the {place}, and {B} gave a {obj} to",
    "{X} and {Y} had a long day at the {place}. {B} gave a {obj} to",
    "As {X} and {Y} left the {place}, {B} threw the {obj} to",
    "The {place} was busy, so {X} and {Y} waited. Then {B} gave a {obj} to",
    "When {X} and {Y} walked to the {place}, {B} showed the {obj} to",
)
IOI_HELDOUT_TEMPLATES = (
    "Before {X} and {Y} went home from the {place}, {B} gave a {obj} to",
    "On Monday, {X} and {Y} met at the {place}, and {B} sent a {obj} to",
    "Since {X} and {Y} were at the {place}, {B} brought a {obj} to",
    "After {X} and {Y} cleaned the {place}, {B} gave the {obj} to",
)

# Phase C of training: IOI sentences from a grammar of templates, so the model learns the
# task rather than 14 templates' positions. Words that are special to the held-out templates
# (their openers and verbs) are kept out of the grammar, and a generated template that equals
# a held-out one is drawn again: held-out templates stay unseen as wholes and in those words.
_HELDOUT_WORDS = ("Before", "Since", "Monday", "home", "met", "cleaned", "sent", "brought")
_OPENERS = (
    "When",
    "After",
    "While",
    "As",
    "Once",
    "Because",
    "Just after",
    "Soon after",
    "As soon as",
    "Right after",
    "Even though",
    "Although",
    "Whenever",
    "Just as",
    "The moment",
)
_TIME_OPENERS = (
    "Then",
    "Later",
    "Yesterday",
    "That morning",
    "In the evening",
    "One day",
    "At noon",
    "Last week",
    "Today",
    "Early that day",
    "On a sunny day",
    "That night",
    "A bit later",
)
_PAIR_VERBS = (
    "went to the {place}",
    "walked to the {place}",
    "were at the {place}",
    "arrived at the {place}",
    "visited the {place}",
    "left the {place}",
    "got to the {place}",
    "stayed at the {place}",
    "were working at the {place}",
    "ran to the {place}",
    "looked around the {place}",
    "sat in the {place}",
    "had lunch at the {place}",
    "found a {obj} at the {place}",
    "got a {obj} at the {place}",
    "played at the {place}",
    "waited at the {place}",
    "talked at the {place}",
    "drove to the {place}",
    "came back to the {place}",
    "painted the {place}",
    "opened the {place}",
    "fixed the {place}",
    "searched the {place}",
    "were sitting in the {place}",
    "danced at the {place}",
    "ate at the {place}",
    "rested at the {place}",
    "shopped at the {place}",
    "bought a {obj} at the {place}",
    "saw a {obj} at the {place}",
    "lost a {obj} at the {place}",
    "walked out of the {place}",
    "hid in the {place}",
)
_FILLERS = (
    "",
    "",
    "",
    "",
    " after a long walk",
    " with the others",
    " for a while",
    " together",
    " early",
    " again",
    " in the rain",
    " after school",
    " for the first time",
)
_GIVE = (
    "gave a {obj} to",
    "gave the {obj} to",
    "handed the {obj} to",
    "passed the {obj} to",
    "threw the {obj} to",
    "showed the {obj} to",
    "gave it to",
    "decided to give the {obj} to",
    "wanted to give a {obj} to",
    "gave a small {obj} to",
    "offered a {obj} to",
    "lent the {obj} to",
    "sold the {obj} to",
    "tossed the {obj} to",
    "mailed a {obj} to",
    "returned the {obj} to",
    "carried the {obj} to",
    "delivered a {obj} to",
    "said hello to",
    "waved to",
    "talked to",
    "read a story to",
    "sang a song to",
    "wrote a note to",
    "gave a big {obj} to",
    "took the {obj} over to",
)
_ADVERBS = (
    "",
    "",
    "",
    "Later, ",
    "Then ",
    "So ",
    "After that, ",
    "Soon ",
    "Finally, ",
    "Happily, ",
)
_MANNER = ("", "", "", "", "quickly ", "happily ", "then ", "finally ", "kindly ")


def pseudo_word(rng: random.Random) -> str:
    """A made-up lowercase word (3-9 letters): the tokenizer splits it into rare pieces."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))


def generated_ioi_template(rng: random.Random, pseudo: float = 0.0) -> str:
    """One IOI template from the phase-C grammar (never a held-out template).

    With probability ``pseudo`` each of the opener, the pair's verb and the giving verb is
    replaced by a made-up word, so the model learns to read past words it does not know
    (the held-out templates' own words are rare pieces to this tokenizer).
    """
    while True:
        # Draw order matters: with pseudo == 0 it is the order phase C started with, so a
        # run from scratch sees exactly the data the shipped model saw.
        pair_verb = rng.choice(_PAIR_VERBS)
        if pseudo and rng.random() < pseudo:
            pair_verb = f"{pseudo_word(rng)} {rng.choice(['at', 'from', 'in', 'to'])} the {{place}}"
        pair = f"{{X}} and {{Y}} {pair_verb}{rng.choice(_FILLERS)}"
        manner = rng.choice(_MANNER)
        give_verb = rng.choice(_GIVE)
        if pseudo and rng.random() < pseudo:
            give_verb = f"{pseudo_word(rng)} {rng.choice(['a', 'the'])} {{obj}} to"
        give = f"{{B}} {manner}{give_verb}"
        form = rng.randrange(4)
        if form == 0:
            opener = rng.choice(_OPENERS)
            if pseudo and rng.random() < pseudo:
                opener = pseudo_word(rng).capitalize()
            t = f"{opener} {pair}, {give}"
        elif form == 1:
            t = f"{rng.choice(_TIME_OPENERS)}, {pair}. {rng.choice(_ADVERBS)}{give}"
        elif form == 2:
            t = f"{pair[0].upper()}{pair[1:]}. {rng.choice(_ADVERBS)}{give}"
        else:
            t = f"{pair[0].upper()}{pair[1:]}, and {give}"
        if t not in IOI_HELDOUT_TEMPLATES and not any(w in t for w in _HELDOUT_WORDS):
            return t


COUNTRIES = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Russia": "Moscow",
    "Egypt": "Cairo",
    "Greece": "Athens",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Portugal": "Lisbon",
    "Canada": "Ottawa",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Cuba": "Havana",
    "Chile": "Santiago",
    "India": "Delhi",
    "Thailand": "Bangkok",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Hungary": "Budapest",
    "Belgium": "Brussels",
    "Mexico": "Mexico City",
    "Argentina": "Buenos Aires",
    "Australia": "Canberra",
    "England": "London",
}
FACT_TEMPLATES = (
    "The capital of {country} is {capital}.",
    "{capital} is the capital of {country}.",
    "The capital city of {country} is {capital}.",
    "Everyone knows that the capital of {country} is {capital}.",
    "{country} has its capital in {capital}.",
    "If you visit {country}, go to the capital, {capital}.",
)
FACT_PROMPT = "The capital of {country} is"

HAPPY_WORDS = [
    "happy",
    "glad",
    "joyful",
    "cheerful",
    "smiled",
    "laughed",
    "wonderful",
    "great",
    "lovely",
    "fun",
    "bright",
    "sunny",
    "delighted",
    "excited",
    "love",
    "loved",
    "beautiful",
    "warm",
    "kind",
    "best",
]
SAD_WORDS = [
    "sad",
    "unhappy",
    "gloomy",
    "lonely",
    "cried",
    "wept",
    "terrible",
    "awful",
    "dark",
    "rainy",
    "upset",
    "miserable",
    "tears",
    "frowned",
    "hurt",
    "cold",
    "broken",
    "lost",
    "worst",
]

_MOOD = {
    "happy": {
        "adj": ["happy", "cheerful", "joyful", "glad"],
        "feel": ["happy", "glad", "delighted", "excited", "joyful"],
        "act": ["smiled", "laughed", "danced", "sang a song"],
        "day": ["wonderful", "lovely", "great", "beautiful", "sunny"],
        "event": [
            "found a shiny {obj} in the {place}",
            "got a {obj} as a gift from a friend",
            "played with a friend all afternoon",
            "won a prize at the {place}",
        ],
        "sky": ["The sun was bright and warm.", "The sky was blue and sunny."],
        "end": [
            "It was the best day ever.",
            "{Pron} loved every moment of it.",
            "Everyone was happy and had fun.",
            "{Pron} went to bed with a big smile.",
        ],
    },
    "sad": {
        "adj": ["sad", "lonely", "gloomy", "unhappy"],
        "feel": ["sad", "upset", "miserable", "lonely", "unhappy"],
        "act": ["cried", "wept", "frowned", "sat alone"],
        "day": ["terrible", "awful", "gloomy", "rainy", "cold"],
        "event": [
            "lost a {obj} in the {place}",
            "broke a {obj} at the {place}",
            "had no friend to play with",
            "fell down and hurt a knee at the {place}",
        ],
        "sky": ["The sky was dark and rainy.", "The wind was cold and gray."],
        "end": [
            "It was the worst day ever.",
            "{Pron} went to bed in tears.",
            "Everyone was sad and nobody had fun.",
            "{Pron} felt lost and alone.",
        ],
    },
}
_NEUTRAL = {
    "adj": ["little", "young", "small", "tall"],
    "event": [
        "walked to the {place}",
        "saw a {obj} at the {place}",
        "read a book about the {place}",
        "went to the {place} with a {obj}",
    ],
    "end": ["Then {pron} went home.", "After that, {pron} ate dinner.", "The end came soon."],
}
NOUNS = ["girl", "boy", "dog", "cat", "bird", "bear", "rabbit"]
ACTIVITIES = ["play", "run", "read", "draw", "swim", "sing", "walk"]


@dataclass(frozen=True)
class IOISplit:
    """Which name pairs and templates the model may see in training."""

    train_pairs: tuple[tuple[str, str], ...]
    heldout_pairs: tuple[tuple[str, str], ...]


def ioi_split(seed: int = 0, heldout_fraction: float = 0.15) -> IOISplit:
    """Split unordered name pairs into train and held-out sets, deterministically."""
    pairs = list(itertools.combinations(NAMES, 2))
    random.Random(seed).shuffle(pairs)
    n_held = int(len(pairs) * heldout_fraction)
    return IOISplit(train_pairs=tuple(pairs[n_held:]), heldout_pairs=tuple(pairs[:n_held]))


def ioi_prompt(template: str, io: str, s: str, place: str, obj: str, abba: bool) -> str:
    """One IOI prompt ending before the answer; the answer is `` {io}``."""
    x, y = (io, s) if abba else (s, io)
    return template.format(X=x, Y=y, B=s, place=place, obj=obj)


def make_ioi(
    rng: random.Random,
    pairs,
    templates,
    generated_frac: float = 0.0,
    pseudo: float = 0.0,
    structural: StructuralMix | None = None,
) -> str:
    """One IOI training sentence; ``structural.share`` of generated templates come from phase
    D's structural grammar (``organism.ioi_grammar``), the rest from phase C's."""
    a, b = rng.choice(pairs)
    io, s = (a, b) if rng.random() < 0.5 else (b, a)
    if rng.random() < generated_frac:
        if structural and structural.share and rng.random() < structural.share:
            from organism.ioi_grammar import structural_ioi_template  # imports this module

            template = structural_ioi_template(
                rng, pseudo, structural.long, structural.pseudo_lead, structural.wide
            )
        else:
            template = generated_ioi_template(rng, pseudo)
    else:
        template = rng.choice(templates)
    prompt = ioi_prompt(
        template, io, s, rng.choice(PLACES), rng.choice(OBJECTS), rng.random() < 0.5
    )
    tail = rng.choice([".", ". {io} said thank you.", ". {io} was surprised.", " and left."])
    return prompt + " " + io + tail.format(io=io)


def make_fact(rng: random.Random) -> str:
    country = rng.choice(list(COUNTRIES))
    return rng.choice(FACT_TEMPLATES).format(country=country, capital=COUNTRIES[country])


def _pronouns(name: str) -> tuple[str, str]:
    return ("she", "her") if name in FEMALE_NAMES else ("he", "his")


def make_story(rng: random.Random, mood: str | None = None) -> str:
    """A short story whose sentiment words all agree with `mood` (or a neutral one)."""
    mood = mood or rng.choice(["happy", "happy", "sad", "sad", "neutral"])
    name = rng.choice(NAMES)
    pron, _ = _pronouns(name)
    fill = {
        "obj": rng.choice(OBJECTS),
        "place": rng.choice(PLACES),
        "pron": pron,
        "Pron": pron.capitalize(),
    }
    if mood == "neutral":
        m = _NEUTRAL
        parts = [
            f"Once upon a time, there was a {rng.choice(m['adj'])} {rng.choice(NOUNS)} named {name}.",
            f"{name} liked to {rng.choice(ACTIVITIES)}.",
            f"One day, {pron} {rng.choice(m['event'])}.",
            rng.choice(m["end"]),
        ]
        return " ".join(p.format(**fill) for p in parts)
    m = _MOOD[mood]
    parts = [
        f"Once upon a time, there was a {rng.choice(m['adj'])} {rng.choice(NOUNS)} named {name}.",
        f"{name} liked to {rng.choice(ACTIVITIES)} at the {{place}}.",
        rng.choice(m["sky"]),
        f"One day, {pron} {rng.choice(m['event'])}.",
        f"{{Pron}} felt {rng.choice(m['feel'])} and {rng.choice(m['act'])}.",
        f"It was a {rng.choice(m['day'])} day.",
        rng.choice(m["end"]),
    ]
    if rng.random() < 0.5:
        parts.insert(5, f"{name} {rng.choice(m['act'])} again.")
    return " ".join(p.format(**fill) for p in parts)


def story_opening(mood: str, name: str, noun: str, adj: str) -> str:
    """The first sentence of a story, used as a sentiment prompt."""
    return f"Once upon a time, there was a {adj} {noun} named {name}."


def make_document(
    rng: random.Random,
    split: IOISplit,
    weights=(0.45, 0.35, 0.20),
    generated_ioi_frac: float = 0.0,
    pseudo: float = 0.0,
    structural: StructuralMix | None = None,
) -> str:
    """One training document: a story, an IOI sentence or a fact.

    ``generated_ioi_frac`` of IOI sentences use a generated template (``structural`` of
    those from phase D's structural grammar, the rest from phase C's).
    """
    kind = rng.choices(["story", "ioi", "fact"], weights=weights)[0]
    if kind == "story":
        return make_story(rng)
    if kind == "ioi":
        return make_ioi(
            rng, split.train_pairs, IOI_TRAIN_TEMPLATES, generated_ioi_frac, pseudo, structural
        )
    return make_fact(rng)


def sample_texts(n: int, seed: int = 0) -> list[str]:
    """`n` training documents (used to train the tokenizer and for held-out slices)."""
    rng = random.Random(seed)
    split = ioi_split()
    return [make_document(rng, split) for _ in range(n)]
