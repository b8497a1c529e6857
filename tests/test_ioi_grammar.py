"""Phase D's structural IOI grammar never yields a held-out structure or its words."""

from __future__ import annotations

import random

import pytest

from organism import corpus, metrics
from organism.ioi_grammar import structural_ioi_template
from organism.ioi_heldout import (
    PROBE_RESERVED_WORDS,
    PROBE_TEMPLATES,
    RESERVED_WORDS,
    STRUCTURE_TEMPLATES,
)


@pytest.fixture(scope="module")
def drawn() -> list[str]:
    rng = random.Random(0)
    return [
        structural_ioi_template(rng, pseudo=p, long=k, pseudo_lead=p, wide=w)
        for p in (0.0, 0.25)
        for k in (0.0, 0.3)
        for w in (0.0, 0.5)  # phase E's widened form too
        for _ in range(1000)
    ]


def test_at_least_six_heldout_structures_each_with_its_reserved_words():
    assert len(set(STRUCTURE_TEMPLATES)) >= 6
    for t in STRUCTURE_TEMPLATES:
        assert all(k in t for k in ("{X} and {Y}", "{B}", "{place}")), t
        assert t.endswith(" to")
        assert any(w in t for w in RESERVED_WORDS), t  # every template has a word of its own


def test_structural_grammar_never_yields_a_heldout_template_or_word(drawn):
    seen = set(drawn)
    assert len(seen) > 3000  # a grammar, not a handful of templates
    heldout = set(STRUCTURE_TEMPLATES) | set(corpus.IOI_HELDOUT_TEMPLATES) | set(PROBE_TEMPLATES)
    assert not seen & heldout
    reserved = RESERVED_WORDS + PROBE_RESERVED_WORDS
    for word in reserved + ("Before", "Since", "Monday", "cleaned", "brought"):
        assert not any(word in t for t in seen), word


def test_phase_c_grammar_never_yields_a_heldout_structure_or_word():
    rng = random.Random(1)
    seen = {corpus.generated_ioi_template(rng, pseudo=p) for p in (0, 0.25) for _ in range(3000)}
    assert not seen & set(STRUCTURE_TEMPLATES)
    for word in RESERVED_WORDS:
        assert not any(word in t for t in seen), word
    for t in corpus.IOI_TRAIN_TEMPLATES:
        assert t not in STRUCTURE_TEMPLATES and not any(w in t for w in RESERVED_WORDS), t


def test_structural_grammar_varies_structure(drawn):
    """Sentence breaks, names late (not first), fillers between, many giving verbs."""
    multi_sentence = sum(t.count(". ") >= 2 for t in drawn)
    names_late = sum(t.index("{X}") > 30 for t in drawn)
    names_not_subject = sum("for {X} and {Y}" in t or "with {Y}" in t for t in drawn)
    verbs = {t.split("{B} ")[1].split()[0] for t in drawn}
    for count in (multi_sentence, names_late, names_not_subject):
        assert count > len(drawn) // 20, (multi_sentence, names_late, names_not_subject)
    assert len(verbs) > 20  # giving verbs (and made-up ones)


def test_every_generated_template_fills_into_an_ioi_prompt(drawn):
    for t in drawn[:500]:
        p = corpus.ioi_prompt(t, "Mary", "John", "store", "ball", abba=True)
        assert "{" not in p and p.count("John") == 2 and p.count("Mary") == 1, p


def test_order_cases_put_the_answer_first_in_abba_and_second_in_baba():
    t = STRUCTURE_TEMPLATES[0]
    for abba in (True, False):
        prompts, answers = metrics.ioi_order_cases(t, abba, n=20)
        for p, a in zip(prompts, answers, strict=True):
            first = min((p.index(n), n) for n in corpus.NAMES if f"{n} and" in p)[1]
            assert (first == a) == abba, (p, a)
            assert p.count(a) == 1


def test_wide_form_is_off_by_default_so_phase_d_draws_are_unchanged():
    a, b = random.Random(7), random.Random(7)
    plain = [structural_ioi_template(a, 0.25, 0.3, 0.25) for _ in range(300)]
    zero = [structural_ioi_template(b, 0.25, 0.3, 0.25, wide=0.0) for _ in range(300)]
    assert plain == zero


def test_wide_form_puts_names_after_long_leads_and_widens_the_verbs():
    rng = random.Random(3)
    drawn = [structural_ioi_template(rng, 0.25, 0.0, 0.3, wide=1.0) for _ in range(2000)]
    late = [t for t in drawn if t.index("{X}") > 40]
    assert len(late) > len(drawn) // 5
    verbs = {t.split("{B} ")[-1].split()[0] for t in drawn}
    assert {"carried", "delivered", "mailed"} <= verbs
    heldout = set(STRUCTURE_TEMPLATES) | set(corpus.IOI_HELDOUT_TEMPLATES)
    assert not set(drawn) & heldout
    for word in RESERVED_WORDS + corpus._HELDOUT_WORDS:
        assert not any(word in t for t in drawn), word


def test_every_probe_has_a_reserved_word_and_fills_into_an_ioi_prompt():
    for t in PROBE_TEMPLATES:
        assert t.endswith(" to") and "{B}" in t and "{place}" in t, t
        assert any(w in t for w in PROBE_RESERVED_WORDS + corpus._HELDOUT_WORDS), t
        assert t not in STRUCTURE_TEMPLATES
