"""Direct logit attribution against TransformerLens's own decomposition of the same run."""

from __future__ import annotations

import pytest
import torch

from engine.analyses.dla import dla
from engine.loading import load_model
from engine.run import PromptRun
from engine.schemas.analyses import DLAParams
from engine.schemas.common import TokenInfo
from tests.helpers import make_tiny_gpt2

PROMPT = "When Mary and John went to the store, John gave a drink to"


def analyze(api, **params):
    r = api.post("/analysis/dla", json={"prompt": PROMPT, "params": params})
    assert r.status_code == 200, r.text
    return r.json()


def terms(res) -> float:
    return (
        sum(map(sum, res["heads"]))
        + sum(res["mlps"])
        + sum(res["attn_bias"])
        + res["embed"]
        + res["pos_embed"]
        + res["unembed_bias"]
    )


def tl_attrs(model, pos, target, baseline=None):
    """TransformerLens: per-head and per-layer logit attributions through ln_final's scale."""
    _, cache = model.run_with_cache(model.to_tokens(PROMPT))
    heads = cache.stack_head_results(layer=-1, pos_slice=pos, apply_ln=True)[:, 0]
    resid, labels = cache.decompose_resid(layer=-1, pos_slice=pos, return_labels=True)
    resid = cache.apply_ln_to_stack(resid, layer=-1, pos_slice=pos)[:, 0]
    direction = model.W_U[:, target] - (model.W_U[:, baseline] if baseline is not None else 0)
    return (heads @ direction).reshape(model.cfg.n_layers, -1), dict(
        zip(labels, resid @ direction, strict=True)
    )


@pytest.mark.parametrize("pos", [3, None])
def test_heads_mlps_and_embeds_match_transformer_lens(api, model, pos):
    res = analyze(api, pos=pos)
    p = res["pos"]
    with torch.no_grad():
        logits = model(model.to_tokens(PROMPT))[0, p]
    assert res["target"]["id"] == int(logits.argmax())  # default target: the prediction
    heads, parts = tl_attrs(model, p, res["target"]["id"])
    assert torch.allclose(torch.tensor(res["heads"]), heads, atol=1e-5)
    for layer, v in enumerate(res["mlps"]):
        assert v == pytest.approx(parts[f"{layer}_mlp_out"].item(), abs=1e-5)
    assert res["embed"] == pytest.approx(parts["embed"].item(), abs=1e-5)
    assert res["pos_embed"] == pytest.approx(parts["pos_embed"].item(), abs=1e-5)
    for layer, v in enumerate(res["attn_bias"]):  # attn_out = heads + b_O
        expected = parts[f"{layer}_attn_out"].item() - heads[layer].sum().item()
        assert v == pytest.approx(expected, abs=1e-5)


def test_terms_sum_to_the_logit_difference(api, model):
    ids = model.to_tokens(PROMPT)[0]
    target, baseline = model.tokenizer.decode([ids[3]]), int(ids[7])
    res = analyze(api, target=target, baseline=baseline)
    with torch.no_grad():
        logits = model(model.to_tokens(PROMPT))[0, -1]
    diff = (logits[ids[3]] - logits[ids[7]]).item()
    assert res["metric"] == "logit difference" and res["baseline"]["id"] == baseline
    assert res["model_value"] == pytest.approx(diff, abs=1e-5)
    assert terms(res) == pytest.approx(diff, abs=1e-4)
    assert res["total"] == pytest.approx(terms(res), abs=1e-6)


@pytest.fixture(scope="module")
def biased_lm(tmp_path_factory):
    path = make_tiny_gpt2(tmp_path_factory.mktemp("biased"), seed=1, random_biases=True)
    return load_model(str(path), device="cpu")


def test_sum_is_the_logit_with_nonzero_biases(biased_lm):
    model = biased_lm.model
    ids = model.to_tokens(PROMPT)[0].tolist()
    infos = [
        TokenInfo(pos=i, id=t, text=model.tokenizer.decode([t]), start=None, end=None)
        for i, t in enumerate(ids)
    ]
    run = PromptRun(biased_lm, ids, infos)
    with torch.no_grad():
        logits = model(model.to_tokens(PROMPT))[0]
    for pos in (0, 5, len(ids) - 1):
        res = dla(run, DLAParams(pos=pos, target=ids[pos])).model_dump()
        assert res["model_value"] == pytest.approx(logits[pos, ids[pos]].item(), abs=1e-5)
        assert terms(res) == pytest.approx(res["model_value"], abs=1e-4)
        assert max(abs(b) for b in res["attn_bias"]) > 1e-3  # the biases are really there


def test_bad_target_and_baseline(api):
    r = api.post("/analysis/dla", json={"prompt": PROMPT, "params": {"baseline": "went to"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "baseline_not_one_token"
    r = api.post("/analysis/dla", json={"prompt": PROMPT, "params": {"target": -1}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "target_out_of_range"
