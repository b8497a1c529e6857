"""The shipped organism has the phenomena its card claims; a random-weight model does not."""

from __future__ import annotations

import json

import pytest

from engine.loading import load_model
from engine.settings import DEFAULT_MODEL_DIR
from organism.evaluate import THRESHOLDS, measure, passes

needs_organism = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="organism not shipped yet"
)


@pytest.fixture(scope="module")
def organism_metrics():
    return measure(load_model(str(DEFAULT_MODEL_DIR)).model)


KNOWN_GAPS: dict[str, str] = {
    # phenomenon -> why it is below its bar (the test is xfail(strict): it fails once fixed).
    # Phase C closed the held-out-template IOI gap (0.57 -> 1.00). Issue 13's new sentence
    # structures (worst 0.0 on the phases A-C base) hold since the base is phase E (worst
    # 0.94, organism/carry/README.md); none is open now.
}


@needs_organism
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[n]))
        if n in KNOWN_GAPS
        else n
        for n in THRESHOLDS
    ],
)
def test_organism_has_phenomenon(organism_metrics, name):
    assert organism_metrics[name] >= THRESHOLDS[name], (name, organism_metrics[name])


@needs_organism
def test_card_numbers_match_a_fresh_measurement(organism_metrics):
    card = json.loads((DEFAULT_MODEL_DIR / "metrics.json").read_text())
    for key in ("induction_loss_drop", "induction_best_head_score", "ioi_heldout_pairs", "facts"):
        assert card[key] == pytest.approx(organism_metrics[key], abs=0.02), key
    assert card["induction_best_head"] == organism_metrics["induction_best_head"]


@needs_organism
def test_the_tokenizer_bos_is_not_id_0():
    tok = load_model(str(DEFAULT_MODEL_DIR)).model.tokenizer
    assert tok.bos_token_id == 1 and tok.pad_token_id == 0


@needs_organism
def test_assets_stay_under_60_mb():
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.parent.rglob("*") if p.is_file())
    assert total < 60e6, f"assets/ is {total / 1e6:.1f} MB"


def test_a_random_model_fails_every_phenomenon(tiny_model_dir):
    m = measure(load_model(str(tiny_model_dir)).model, n_ioi=50, n_sentiment=10)
    assert not any(passes(m).values()), passes(m)


def test_template_grammar_never_yields_a_heldout_template_or_its_words():
    import random

    from organism import corpus

    rng = random.Random(0)
    seen = {corpus.generated_ioi_template(rng, pseudo=p) for p in (0, 0.25) for _ in range(3000)}
    assert len(seen) > 1000  # a grammar, not a handful of templates
    assert not seen & set(corpus.IOI_HELDOUT_TEMPLATES)
    for word in ("Before", "Since", "Monday", "cleaned", "sent", "brought", "home"):
        assert any(word in t for t in corpus.IOI_HELDOUT_TEMPLATES), word
        assert not any(word in t for t in seen), word
