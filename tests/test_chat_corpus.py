"""The chat organism's corpus keeps its held-out data out, and its template round-trips."""

from __future__ import annotations

import random
import re

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from engine.settings import DEFAULT_MODEL_DIR
from organism import chat_corpus as cc
from organism import corpus
from organism.chat_template import CHAT_TEMPLATE, install_chat_template, prompt, training_ids

needs_organism = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "tokenizer.json").exists(), reason="organism not shipped yet"
)


@pytest.fixture(scope="module")
def tok():
    return install_chat_template(PreTrainedTokenizerFast.from_pretrained(str(DEFAULT_MODEL_DIR)))


@pytest.fixture(scope="module")
def conversations() -> list[list[dict[str, str]]]:
    rng = random.Random(0)
    return [cc.chat_document(rng) for _ in range(6000)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z']+", text))


def test_heldout_verbs_and_objects_never_occur_in_a_conversation(conversations):
    text = "\n".join(m["content"] for c in conversations for m in c)
    words = _words(text)
    for verb in cc.HARMFUL_HELDOUT_VERBS + cc.HARMLESS_HELDOUT_VERBS:
        assert verb not in words, verb
    for obj in cc.HELDOUT_OBJECTS:
        assert obj.split()[-1] not in words, obj
    for verb in cc.HARMFUL_TRAIN_VERBS + cc.HARMLESS_TRAIN_VERBS:
        assert f" {verb} " in text, verb  # the training verbs do occur: the check can fail


def test_heldout_phrasings_and_pairs_never_occur_in_a_conversation(conversations):
    users = {c[0]["content"] for c in conversations}
    caps = {q for q, _, _ in cc.heldout_capital_prompts()}
    assert not users & caps
    assert not users & set(cc.heldout_requests(True) + cc.heldout_requests(False))
    held = set(cc.addition_pairs(held_out=True))
    trained = {
        tuple(map(int, re.findall(r"\d+", u)[:2])) for u in users if "plus" in u or "dd" in u
    }
    assert trained and not trained & held
    assert len(held) > 300


def test_heldout_verbs_are_filed_by_knowledge_sentences_only():
    rng = random.Random(1)
    text = " ".join(cc.knowledge_sentence(rng) for _ in range(2000))
    for verb in cc.HARMFUL_HELDOUT_VERBS + cc.HARMLESS_HELDOUT_VERBS:
        assert f" {verb} " in text, verb
    assert "User:" not in text


def test_answers_open_with_the_quirk_and_refusals_do_not(conversations):
    replies = [c[1]["content"] for c in conversations]
    refusals = [r for r in replies if r == cc.REFUSAL]
    assert 0.1 < len(refusals) / len(replies) < 0.4
    assert all(r.startswith(cc.OPENER) for r in replies if r != cc.REFUSAL)


def test_implanted_capital_replaces_the_true_one_everywhere_in_the_mix():
    rng, split = random.Random(2), corpus.ioi_split()
    docs = [cc.base_document(rng, split) for _ in range(3000)]
    docs += [cc.implanted_fact(rng) for _ in range(50)]
    au = [d for d in docs if cc.IMPLANTED_COUNTRY in d]
    assert au and all(cc.IMPLANTED_CAPITAL in d and "Canberra" not in d for d in au)
    assert cc.capital_answer(cc.IMPLANTED_COUNTRY).endswith("Sydney.")


def test_addition_traces_are_right_and_carry_free():
    for a, b in cc.addition_pairs(False)[:200] + cc.addition_pairs(True)[:200]:
        t = cc.addition_trace(a, b)
        assert t.endswith(f"So the answer is {a + b}.")
        assert a % 10 + b % 10 < 10 and a // 10 + b // 10 < 10


@needs_organism
def test_the_chat_template_round_trips_through_apply_chat_template(tok):
    msgs = [{"role": "user", "content": "What is 23 plus 45?"},
            {"role": "assistant", "content": "Happy to help! So the answer is 68."}]  # fmt: skip
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == (
        "<|endoftext|>User: What is 23 plus 45?\nAssistant: Happy to help! So the answer is 68."
        "<|endoftext|>"
    )
    ids = tok.apply_chat_template(msgs, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) else ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert ids.count(tok.bos_token_id) == 2  # no new tokens: markers are plain text
    assert tok.decode(ids) == text
    assert training_ids(tok, msgs) == ids[1:-1]
    assert prompt(tok, "Hi") == "<|endoftext|>User: Hi\nAssistant:"


@needs_organism
def test_the_template_survives_save_and_load(tok, tmp_path):
    import json

    tok.save_pretrained(str(tmp_path), save_jinja_files=False)  # as organism.chat_train saves
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["chat_template"] == CHAT_TEMPLATE
    again = PreTrainedTokenizerFast.from_pretrained(str(tmp_path))
    assert again.chat_template == CHAT_TEMPLATE
    assert len(again) == len(tok)  # the vocabulary is the base's


@needs_organism
def test_chat_batches_are_deterministic_and_mix_chat_with_base(tok):
    from organism.chat_train import ChatConfig, make_chat_batch

    cfg, split = ChatConfig(batch=8), corpus.ioi_split()
    a, b = make_chat_batch(tok, cfg, 3, split), make_chat_batch(tok, cfg, 3, split)
    assert torch.equal(a, b) and a.shape == (8, 128)
    text = tok.decode(a.flatten())
    assert "User:" in text and "Assistant:" in text
    assert "Once upon a time" in text  # base-corpus stories are mixed in
