"""Logit lens analyses against a direct ``ln_final`` + ``unembed`` readout in TransformerLens."""

from __future__ import annotations

import pytest
import torch

PROMPT = "The capital of France is Paris. The capital of France is"
STAGES = ["resid_pre", "resid_mid", "resid_post"]


def post(api, name, prompt=PROMPT, **params):
    return api.post(f"/analysis/{name}", json={"prompt": prompt, "params": params})


def analyze(api, name, prompt=PROMPT, **params):
    r = post(api, name, prompt, **params)
    assert r.status_code == 200, r.text
    return r.json()


def direct_rows(model, stage, prompt=PROMPT):
    """[row, pos, vocab] probabilities read directly from the cache."""
    tokens = model.to_tokens(prompt)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        n = model.cfg.n_layers
        resids = [cache[stage, layer][0] for layer in range(n)]
        if stage != "resid_post":
            resids.append(cache["resid_post", n - 1][0])
        lens = model.unembed(model.ln_final(torch.stack(resids)))
    return lens, logits[0]


@pytest.mark.parametrize("stage", STAGES)
def test_lens_top_tokens_equal_direct_readout(api, model, stage):
    res = analyze(api, "logit_lens", stage=stage, top_k=3, width=64)
    lens, logits = direct_rows(model, stage)
    probs = lens.softmax(-1)
    top_p, top_i = probs.topk(3, dim=-1)
    got_i = torch.tensor([[[c["id"] for c in cell] for cell in row] for row in res["top"]])
    got_p = torch.tensor([[[c["prob"] for c in cell] for cell in row] for row in res["top"]])
    assert torch.equal(got_i, top_i) and torch.allclose(got_p, top_p, atol=1e-6)
    assert torch.allclose(got_p.sum(-1), top_p.sum(-1), atol=1e-6)
    assert torch.allclose(lens[-1], logits, atol=1e-4)  # the last row is the model's output
    assert len(res["rows"]) == model.cfg.n_layers + (stage != "resid_post")
    assert res["rows"][-1] == (
        "output" if stage != "resid_post" else f"L{model.cfg.n_layers - 1} post"
    )


@pytest.mark.parametrize("stage", ["resid_pre", "resid_post"])
def test_targets_prob_logit_and_rank_equal_direct(api, model, stage):
    pos = 5
    token = model.to_tokens(PROMPT)[0, 3].item()  # a token id from the prompt
    text = model.tokenizer.decode([token])
    res = analyze(api, "logit_lens_targets", stage=stage, pos=pos, targets=[text, 7])
    lens, _ = direct_rows(model, stage)
    at = lens[:, pos]  # [row, vocab]
    assert [t["token"]["id"] for t in res["traces"]] == [token, 7]
    for trace, t in zip(res["traces"], [token, 7], strict=True):
        assert torch.allclose(torch.tensor(trace["prob"]), at.softmax(-1)[:, t], atol=1e-6)
        assert torch.allclose(torch.tensor(trace["logit"]), at[:, t], atol=1e-5)
        rank = (at > at[:, t : t + 1]).sum(-1) + 1
        assert trace["rank"] == rank.tolist()


def test_default_target_is_the_final_prediction(api, model):
    res = analyze(api, "logit_lens_targets")
    lens, logits = direct_rows(model, "resid_post")
    (trace,) = res["traces"]
    assert res["pos"] == logits.shape[0] - 1
    assert trace["token"]["id"] == int(logits[-1].argmax())
    assert trace["rank"][-1] == 1


def test_bad_targets_and_positions_are_clear_errors(api, model):
    r = post(api, "logit_lens_targets", targets=["The capital"])
    body = r.json()["error"]
    assert r.status_code == 422 and body["code"] == "target_not_one_token"
    assert "tokens for this model" in body["message"] and "id " in body["message"]
    r = post(api, "logit_lens_targets", targets=[10**6])
    assert r.status_code == 422 and r.json()["error"]["code"] == "target_out_of_range"
    n = model.to_tokens(PROMPT).shape[1]
    r = post(api, "logit_lens_targets", pos=n)
    assert r.status_code == 422 and r.json()["error"]["code"] == "pos_out_of_range"
    assert f"has {n} tokens" in r.json()["error"]["message"]
    r = post(api, "logit_lens", stage="resid_final")
    assert r.status_code == 422 and "stage" in r.json()["error"]["message"]
