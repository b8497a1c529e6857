"""Side-by-side generation from two models (issue 14): the organism in slot "a" and the chat
organism in "b" continue one prompt with the same seed and sampling; the stream's KL is
KL(A || B) of the two models' next tokens along A's text. Ground truth: Hugging Face
transformers, greedy, run here on each model on its own.
"""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from components import steering_setup as ss
from engine.api import create_app
from engine.client import EngineClient
from engine.schemas.steering import StreamEvent
from engine.service import Engine
from engine.settings import DEFAULT_MODEL_DIR, EngineSettings

CHAT_DIR = DEFAULT_MODEL_DIR.parent / "organism-chat"
PROMPT = "The capital of Australia is"
N = 6
pytestmark = pytest.mark.skipif(
    not (CHAT_DIR / "model.safetensors").exists(), reason="the chat organism is not shipped"
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    settings = EngineSettings(model=str(DEFAULT_MODEL_DIR), cache_dir=tmp_path_factory.mktemp("sm"))
    eng = Engine(settings)
    with TestClient(create_app(eng)) as api:
        client = EngineClient("http://testserver")
        client._http = api
        client.load_model(str(CHAT_DIR), slot="b")
        yield api, client
    eng.close()


def hf(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


def greedy(model, ids: list[int], n: int) -> list[int]:
    out = list(ids)
    with torch.no_grad():
        for _ in range(n):
            out.append(int(model(torch.tensor([out])).logits[0, -1].argmax()))
    return out[len(ids) :]


def stream(api, body: dict) -> list[dict]:
    r = api.post("/steering/generate", json=body)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines() if line]


def test_two_models_side_by_side_match_each_model_alone_and_the_kl_along_a(pair):
    api, _ = pair
    tok = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    ids = [tok.bos_token_id] + tok(PROMPT, add_special_tokens=False)["input_ids"]
    a, b = hf(DEFAULT_MODEL_DIR), hf(CHAT_DIR)
    events = stream(api, {"prompt": PROMPT, "model_b": "b", "max_new_tokens": N,
                          "temperature": 0, "stop_at_eos": False})  # fmt: skip
    steps = [e for e in events if e["type"] == "token"]
    assert [e["base"]["id"] for e in steps] == greedy(a, ids, N)
    assert [e["steered"]["id"] for e in steps] == greedy(b, ids, N)
    got = ss.collect([StreamEvent.model_validate(e) for e in events])  # as the client gives them
    assert "Sydney" in got["steered"] and "Sydney" not in got["base"]  # the implanted fact
    # KL(A || B) at each step of A's text, from both models' logits over prompt + A's tokens
    seq = torch.tensor([ids + [e["base"]["id"] for e in steps]])
    with torch.no_grad():
        la = a(seq).logits[0, len(ids) - 1 : -1].log_softmax(-1)
        lb = b(seq).logits[0, len(ids) - 1 : -1].log_softmax(-1)
    want = (la.exp() * (la - lb)).sum(-1)
    assert [e["kl"] for e in steps] == pytest.approx(want.tolist(), rel=1e-3, abs=1e-4)
    assert want[0] > 1.0  # the capital: the models disagree at once


def test_steering_runs_on_the_slot_it_names(pair):
    api, _ = pair
    body = {"prompt": PROMPT, "max_new_tokens": 3, "temperature": 0, "stop_at_eos": False}
    on_b = [e for e in stream(api, {**body, "model": "b"}) if e["type"] == "token"]
    on_a = [e for e in stream(api, body) if e["type"] == "token"]
    side = [e for e in stream(api, {**body, "model_b": "b"}) if e["type"] == "token"]
    assert [e["base"]["id"] for e in on_b] == [e["steered"]["id"] for e in side]
    assert [e["base"]["id"] for e in on_a] == [e["base"]["id"] for e in side]
    bad = api.post("/steering/generate", json={**body, "model_b": "c"})
    assert bad.status_code == 404 and "slot" in bad.json()["error"]["message"]


def test_model_b_steers_with_a_latent_of_the_base_models_sae(pair):
    """The chat slot has no SAEs of its own: a latent of the base's SAE steers it (its decoder
    row added to B's residual stream), here greedy after the fact prompt."""
    api, client = pair
    sae = next(s.id for s in client.saes())
    vec = {"kind": "sae_latent", "sae": sae, "index": 0}
    body = {"prompt": PROMPT, "max_new_tokens": 4, "temperature": 0, "stop_at_eos": False,
            "model": "b"}  # fmt: skip
    still = [e for e in stream(api, {**body, "vectors": [{**vec, "coefficient": 0}]})
             if e["type"] == "token"]  # fmt: skip
    assert all(e["steered"]["id"] == e["base"]["id"] and e["kl"] == 0 for e in still)
    moved = [e for e in stream(api, {**body, "vectors": [{**vec, "coefficient": 200}]})
             if e["type"] == "token"]  # fmt: skip
    assert moved[0]["kl"] > 0
    assert [e["base"]["id"] for e in moved] == [e["base"]["id"] for e in still]
