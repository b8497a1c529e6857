"""Held-out IOI sentence *structures*: the test side of the base organism's IOI claim.

The card's first held-out templates (``corpus.IOI_HELDOUT_TEMPLATES``) all share the shape
"<opener> X and Y <verb> the place, B gave an object to". These differ in structure: the
giving in a later sentence, names late in a clause after a long scene-setting clause,
sentence breaks with pronoun-free filler sentences, names that are not the subject, and
giving verbs the training grammar never uses. No training grammar may produce any of them
or any of ``RESERVED_WORDS`` (``tests/test_ioi_grammar.py`` checks thousands of draws).

Words were chosen from ones this tokenizer already knows as whole pieces where possible;
the new giving verbs are not in its vocabulary and split into pieces (`` r·ol·l·ed``,
`` s·l·id``, `` k·i·c·ked``): the model must read past them, as for a new word.
"""

from __future__ import annotations

# {X} {Y}: the pair in mention order; {B}: the subject (repeated name); the answer is the other.
STRUCTURE_TEMPLATES: tuple[str, ...] = (
    # two sentences, the giving in the second, a verb other than "gave"
    "{X} and {Y} spent the afternoon at the {place}. In the end, {B} handed the {obj} to",
    # names late, after a long scene-setting clause
    "On a warm and sunny day with nothing much to do at the {place}, {X} and {Y} sat down, "
    "and {B} passed a {obj} to",
    # sentence breaks with pronoun-free fillers
    "{X} and {Y} were at the {place}. The sky was blue. The {obj} was on the table. "
    "{B} threw the {obj} to",
    # names late in a subordinate clause, a new giving verb
    "It was late at the {place} when {X} and {Y} came in, so {B} slid the {obj} over to",
    # a long distance between the names and a new giving verb
    "{X} and {Y} looked at the {obj} for a long time at the {place}, and then {B} rolled it to",
    # three sentences, pronoun-free fillers, the pair in the middle one
    "The {place} was quiet. {X} and {Y} waited by the door. Nobody said a word. "
    "{B} showed the {obj} to",
    # the names are not the subject of their clause; a new giving verb
    "After a long day, the {place} was empty except for {X} and {Y}. {B} kicked a {obj} to",
)

# Words and phrases special to the templates above: no training grammar may use them.
RESERVED_WORDS: tuple[str, ...] = (
    "spent",
    "In the end",
    "nothing much",
    "on the table",
    "slid",
    "It was late",
    "rolled",
    "for a long time",
    "Nobody",
    "by the door",
    "said a word",
    "except",
    "kicked",
    "empty",
)

# A second held-out set, written after phase E met its bar and never used for a training
# decision: measured (``organism.evaluate``: ``ioi_probes_each``), not yet a bar. Phase E
# held 3 of 6 in both orders (organism/carry/README.md): names not joined by "and" failed.
PROBE_TEMPLATES: tuple[str, ...] = (
    "During a noisy party at the {place}, {X} talked with {Y} for hours. "
    "Later that night, {B} tossed the {obj} to",
    "{X} and {Y} took the bus to the {place}. It was crowded. {B} quietly handed the {obj} to",
    "Because the weather had turned bad over the {place}, {X} and {Y} stayed inside, "
    "and {B} lent the {obj} to",
    "Everyone knew that {X} and {Y} loved the {place}. One morning, {B} mailed a {obj} to",
    "At the {place}, a teacher watched {X} and {Y} draw. {B} passed the {obj} to",
    "{X} met {Y} at the {place}. {B} gave a {obj} to",
)
PROBE_RESERVED_WORDS: tuple[str, ...] = (
    "noisy party",
    "talked with",
    "for hours",
    "Later that night",
    "took the bus",
    "crowded",
    "quietly",
    "weather had turned",
    "stayed inside",
    "Everyone knew",
    "loved",
    "One morning",
    "teacher watched",
)
