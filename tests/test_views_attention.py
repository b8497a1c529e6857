"""Attention view analyses against TransformerLens computed directly on the same model."""

from __future__ import annotations

import json

import pytest
import torch
from transformer_lens import head_detector

from engine.analyses.head_scores import repeat_masks, scores_of
from engine.launcher import REPO_ROOT
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.arrays import unpack
from engine.service import Engine
from engine.settings import EngineSettings

PROMPT = "When Mary and John went to the store, John gave a drink to Mary"


def analyze(api, name, prompt=PROMPT, **params):
    r = api.post(f"/analysis/{name}", json={"prompt": prompt, "params": params})
    assert r.status_code == 200, r.text
    return r.json()


def direct_patterns(model, prompt=PROMPT):
    tokens = model.to_tokens(prompt)
    _, cache = model.run_with_cache(tokens, remove_batch_dim=True)
    pats = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
    return tokens, pats


def test_layer_patterns_equal_the_cache_and_sum_to_one(api, model):
    _, pats = direct_patterns(model)
    for layer in range(model.cfg.n_layers):
        res = analyze(api, "attention_layer", layer=layer, width=64)
        got = torch.from_numpy(unpack(res["patterns"]))
        assert got.shape == pats[layer].shape and res["start"] == 0
        assert torch.equal(got, pats[layer].half().float())  # float16 on the wire, exactly
        assert torch.allclose(got.sum(-1), torch.ones(got.shape[:2]), atol=3e-3)
        assert torch.all(got.triu(1) == 0)  # causal
        assert not unpack(res["before"]).any()  # the window starts at 0: nothing before it
    assert len(res["tokens"]) == got.shape[-1] == res["n_tokens"] == res["stop"]


def test_repeat_masks_are_transformer_lens_detection_patterns(model):
    tokens = model.to_tokens(PROMPT).cpu()
    dup, ind = repeat_masks(tokens[0].tolist())
    assert dup.any() and ind.any()
    tl_dup = head_detector.get_duplicate_token_head_detection_pattern(tokens)
    tl_ind = head_detector.get_induction_head_detection_pattern(tokens)
    assert torch.equal(dup.float(), tl_dup) and torch.equal(ind.float(), tl_ind)


def by_name(res):
    return {s["name"]: s for s in res["scores"]}


def test_head_scores_match_transformer_lens(api, model):
    tokens, pats = direct_patterns(model)
    n = tokens.shape[1]
    s = by_name(analyze(api, "head_scores"))
    # TransformerLens's "mul" score divides by all n query rows; ours by the rows that count.
    for name, tl_name in [
        ("prev_token", "previous_token_head"),
        ("duplicate", "duplicate_token_head"),
        ("induction", "induction_head"),
    ]:
        tl = head_detector.detect_head(model, PROMPT, tl_name)
        got = torch.tensor(s[name]["values"]) * s[name]["n_queries"] / n
        assert torch.allclose(got, tl, atol=1e-5), name
    assert s["prev_token"]["n_queries"] == n - 1
    bos = pats[..., 1:, 0].mean(-1)
    assert torch.allclose(torch.tensor(s["bos"]["values"]), bos, atol=1e-6)
    ent = torch.distributions.Categorical(probs=pats[..., 1:, :]).entropy().mean(-1)
    assert torch.allclose(torch.tensor(s["entropy"]["values"]), ent, atol=1e-5)


def test_scores_average_only_over_repeated_tokens():
    ids = [0, 5, 6, 7, 5, 6]  # 5 and 6 repeat: queries 4 and 5
    n = len(ids)
    pats = torch.zeros(1, 1, n, n)
    pats[0, 0, :, 0] = 1.0
    pats[0, 0, 4] = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # all after its copy (1)
    pats[0, 0, 5] = torch.tensor([0.0, 0.0, 0.25, 0.5, 0.0, 0.25])  # copy at 2, after it 3
    s = {x.name: x for x in scores_of(pats, ids)}
    assert s["induction"].values == [[pytest.approx(0.75)]] and s["induction"].n_queries == 2
    assert s["duplicate"].values == [[pytest.approx(0.125)]]
    assert s["bos"].values == [[pytest.approx(3 / 5)]]


def test_no_repeats_gives_none_with_a_reason(api, model):
    prompt = "The cat"
    ids = model.to_tokens(prompt)[0].tolist()
    assert len(set(ids)) == len(ids)
    s = by_name(analyze(api, "head_scores", prompt))
    for name in ("duplicate", "induction"):
        assert s[name]["values"] is None and "repeats" in s[name]["reason"]
    assert s["prev_token"]["values"] is not None


def test_layer_out_of_range_is_a_clear_error(api, model):
    r = api.post("/analysis/attention_layer", json={"prompt": PROMPT, "params": {"layer": 9}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "layer_out_of_range"
    r = api.post("/analysis/head_scores", json={"prompt": PROMPT, "params": {"layr": 1}})
    assert r.status_code == 422 and "layr" in r.json()["error"]["message"]


ORGANISM = REPO_ROOT / "assets" / "organism"
REPEATED = (
    "Tom saw a red kite over the old mill by the lake. "
    "Tom saw a red kite over the old mill by the lake."
)


@pytest.mark.skipif(not (ORGANISM / "config.json").exists(), reason="organism not shipped yet")
def test_induction_score_finds_the_organisms_induction_heads(tmp_path):
    from organism import metrics
    from organism.evaluate import tl_runner

    engine = Engine(EngineSettings(model=str(ORGANISM), device="cpu", cache_dir=tmp_path))
    try:
        model = engine.require_model().model
        tok = model.tokenizer
        vocab = [i for i in range(len(tok)) if i not in tok.all_special_ids]
        truth = metrics.induction(tl_runner(model), metrics.random_repeats(vocab, tok.bos_token_id))
        gt = torch.tensor(truth.head_scores)  # TransformerLens-style, on random repeats
        assert gt.max() >= 0.4, f"the organism has no induction head: {gt}"
        induction_heads = {tuple(i) for i in (gt >= 0.5 * gt.max()).nonzero().tolist()}
        res = json.loads(engine.analyze("head_scores", AnalysisRequest(prompt=REPEATED)))
        ours = torch.tensor(by_name(res)["induction"]["values"])
        best = divmod(int(ours.argmax()), ours.shape[1])
        assert best in induction_heads, (best, induction_heads, gt)
        assert ours.max() > 0.3
    finally:
        engine.close()
