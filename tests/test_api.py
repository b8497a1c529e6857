"""The HTTP API against TransformerLens ground truth, and every bad input's clear error."""

from __future__ import annotations

import json
import time

import pytest
import torch

from engine.schemas.arrays import unpack

PROMPT = "When Mary and John went to the store, John gave a drink to"


def analyze(api, name, prompt=PROMPT, **params):
    return api.post(f"/analysis/{name}", json={"prompt": prompt, "params": params})


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["code"] == code
    assert len(body["message"]) > 10
    return body


def assert_still_serving(api):
    assert api.get("/health").json()["status"] == "ok"
    assert analyze(api, "predictions", "Hello there").status_code == 200


def test_tokenize_matches_transformer_lens(api, model):
    toks = api.post("/tokenize", json={"prompt": PROMPT}).json()["tokens"]
    assert [t["id"] for t in toks] == model.to_tokens(PROMPT)[0].tolist()
    assert toks[0]["start"] is None  # BOS
    for t in toks[1:]:
        assert PROMPT[t["start"] : t["end"]] == t["text"]


def test_predictions_match_direct_forward(api, model):
    res = analyze(api, "predictions", top_k=4).json()
    tokens = model.to_tokens(PROMPT)
    with torch.no_grad():
        logits = model(tokens)[0]
        losses = model(tokens, return_type="loss", loss_per_token=True)[0]
    probs = logits.softmax(-1)
    top_p, top_i = probs.topk(4, dim=-1)
    assert [[p["id"] for p in row] for row in res["top"]] == top_i.tolist()
    got = torch.tensor([[p["prob"] for p in row] for row in res["top"]])
    assert torch.allclose(got, top_p, atol=1e-6)
    assert res["loss"][0] is None
    assert torch.allclose(torch.tensor(res["loss"][1:]), losses, atol=1e-5)
    assert res["mean_loss"] == pytest.approx(losses.mean().item(), abs=1e-5)


def test_attention_pattern_matches_cache(api, model):
    res = analyze(api, "attention_pattern", layer=1, head=2, width=64).json()
    _, cache = model.run_with_cache(model.to_tokens(PROMPT))
    expected = cache["pattern", 1][0, 2]
    got = torch.from_numpy(unpack(res["pattern"]))
    assert torch.equal(got, expected.half().float())  # float16 on the wire
    assert torch.allclose(got.sum(-1), torch.ones(got.shape[0]), atol=3e-3)


@pytest.mark.parametrize(
    "prompt, status, code",
    [
        ("", 422, "empty_prompt"),
        ("   \n\t ", 422, "empty_prompt"),
        ("hello\x00world", 422, "invalid_characters"),
        ("bell \x07 and escape \x1b[31m", 422, "invalid_characters"),
        ("lone surrogate \ud800 here", 422, "invalid_characters"),
        ("noncharacter \uffff", 422, "invalid_characters"),
        ("word " * 500, 422, "prompt_too_long"),
        ("x" * 100_001, 413, "prompt_too_long"),
    ],
)
def test_bad_prompts_get_clear_errors(api, prompt, status, code):
    body = json.dumps({"prompt": prompt, "params": {}})  # ASCII-escaped: carries lone surrogates
    for path in ("/tokenize", "/analysis/predictions"):
        r = api.post(path, content=body, headers={"content-type": "application/json"})
        assert_error(r, status, code)
    assert_still_serving(api)


def test_too_long_says_how_long_is_allowed(api, engine):
    body = assert_error(analyze(api, "predictions", "word " * 500), 422, "prompt_too_long")
    n_ctx = engine.require_model().n_ctx
    assert f"context is {n_ctx} tokens" in body["message"]
    assert body["detail"]["n_ctx"] == n_ctx


def test_odd_but_valid_unicode_is_analysed(api, model):
    prompt = "café 🙂 naïve — 東京 مرحبا e\u0301 zero\u200bwidth"
    res = analyze(api, "predictions", prompt)
    assert res.status_code == 200
    assert len(res.json()["tokens"]) == model.to_tokens(prompt).shape[1]


@pytest.mark.parametrize(
    "params, code",
    [
        ({"layer": 99, "head": 0}, "layer_out_of_range"),
        ({"layer": 0, "head": 4}, "head_out_of_range"),
    ],
)
def test_out_of_range_layer_or_head(api, params, code):
    body = assert_error(analyze(api, "attention_pattern", **params), 422, code)
    assert "out of range" in body["message"]
    assert_still_serving(api)


def test_negative_and_mistyped_params(api):
    assert_error(analyze(api, "attention_pattern", layer=-1, head=0), 422, "bad_params")
    assert_error(analyze(api, "predictions", top_k="many"), 422, "bad_params")
    assert_still_serving(api)


def test_malformed_json_and_missing_fields(api):
    r = api.post(
        "/analysis/predictions",
        content=b'{"prompt": "hi", ',
        headers={"content-type": "application/json"},
    )
    assert_error(r, 400, "malformed_json")
    assert_error(api.post("/analysis/predictions", json={"params": {}}), 422, "bad_request")
    assert_error(api.post("/tokenize", json={"prompt": 42}), 422, "bad_request")
    assert_still_serving(api)


def test_unknown_analysis_and_model(api):
    assert_error(analyze(api, "mind_reading"), 404, "unknown_analysis")
    r = api.post("/jobs/load_model", json={"name": "gpt-7-imaginary"})
    job_id = r.json()["id"]
    state = wait(api, job_id)
    assert state["job"]["status"] == "failed"
    assert "neither a local" in state["job"]["error"]
    assert_still_serving(api)  # the old model is still loaded


def wait(api, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api.get(f"/jobs/{job_id}").json()
        if state["job"]["status"] in ("done", "failed", "cancelled"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_batch_loss_job_matches_direct(api, model):
    texts = ["The capital of France is Paris.", "Once upon a time"]
    state = wait(api, api.post("/jobs/batch_loss", json={"texts": texts}).json()["id"])
    assert state["job"]["status"] == "done" and state["job"]["progress"] == 1.0
    with torch.no_grad():
        expected = [model(model.to_tokens(t), return_type="loss").item() for t in texts]
    assert state["result"]["mean_loss"] == pytest.approx(expected, abs=1e-5)


def test_cancel_stops_a_running_job(api):
    texts = [f"text number {i} about the park" for i in range(20000)]
    job = api.post("/jobs/batch_loss", json={"texts": texts}).json()
    deadline = time.monotonic() + 20
    while api.get(f"/jobs/{job['id']}").json()["job"]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    api.post(f"/jobs/{job['id']}/cancel")
    state = wait(api, job["id"])
    assert state["job"]["status"] == "cancelled"
    assert state["job"]["progress"] < 0.5
    assert state["result"] is None
    assert_still_serving(api)


def test_unknown_job_and_job_kind(api):
    assert_error(api.get("/jobs/nope"), 404, "unknown_job")
    assert_error(api.post("/jobs/world_domination", json={}), 404, "unknown_job_kind")
    assert_error(api.post("/jobs/batch_loss", json={"texts": []}), 422, "bad_params")


def test_capabilities_describe_the_model(api, engine):
    caps = api.get("/capabilities").json()
    assert caps["model"]["n_layers"] == engine.require_model().n_layers
    assert caps["features"]["predictions"]["available"]
    assert not caps["features"]["saes"]["available"] and caps["features"]["saes"]["reason"]
    assert "predictions" in caps["analyses"] and "batch_loss" in caps["jobs"]
