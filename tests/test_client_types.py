"""The client answers with the engine's pydantic models, route by route, and a model holds
every field of the engine's JSON (nothing dropped on the way to a view)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine.analyses.registry import ANALYSES
from engine.api import create_app
from engine.client import RESULTS, EngineClient
from engine.schemas.common import TokenizeResponse
from engine.schemas.directions import Direction, DirectionInfo
from engine.schemas.model import Capabilities, Health, LoadEstimate
from engine.schemas.saes import SaeInfo
from engine.schemas.steering import StreamEvent

PROMPT = "Once upon a time, there was a happy girl named Lily."
PROMPT_B = "Once upon a time, there was a sad girl named Lily."  # as many tokens: a pair


@pytest.fixture(scope="module")
def client(org):
    c = EngineClient("http://127.0.0.1:8765")
    c._http = TestClient(create_app(org), base_url=c.url)
    yield c
    c.close()


def raw(client: EngineClient, method: str, path: str, body: dict | None = None):
    return client.send(method, path, body)


def test_the_client_knows_every_analysis_result_type():
    assert {a.name: a.result for a in ANALYSES} == RESULTS


def test_every_route_answers_its_schema_with_every_field(client, org):
    health = client.health()
    assert isinstance(health, Health) and health.status == "ok" and health.model
    caps = client.capabilities()
    assert isinstance(caps, Capabilities) and caps.model.n_layers == org.lm.n_layers
    assert caps.model_dump(mode="json") == raw(client, "GET", "/capabilities")
    tokens = client.tokenize(PROMPT)
    assert isinstance(tokens, TokenizeResponse) and tokens.tokens[0].pos == 0
    estimate = client.estimate_model(str(org.lm.local_dir))
    assert isinstance(estimate, LoadEstimate) and estimate.memory.fits
    saes = client.saes()
    assert saes and all(isinstance(s, SaeInfo) for s in saes)
    sae = saes[0].id
    params = {
        "predictions": {"top_k": 3},
        "attention_pattern": {"layer": 0, "head": 0},
        "attention_layer": {"layer": 0},
        "head_scores": {},
        "logit_lens": {},
        "logit_lens_targets": {"targets": [" Lily"]},
        "dla": {},
        "sae_latents": {"sae": sae},
        "latent_detail": {"sae": sae, "index": 0},
        "latent_search": {"sae": sae, "query": " girl", "by": "token"},
        # pair analyses (engine/pairs.py): the same model on prompt B
        "diff_tokens": {"top_k": 2},
        "diff_resid": {"top_k": 2},
        "diff_components": {},
        "diff_latents": {"sae": sae, "top_k": 2, "n_strongest": 3},
    }
    assert set(params) == set(RESULTS)
    for name, p in params.items():
        side = {"prompt_b": PROMPT_B} if name.startswith("diff_") else {}
        got = client.analyze(name, PROMPT, **side, **p)
        assert type(got) is RESULTS[name], name
        body = {"prompt": PROMPT, "prepend_bos": True, "params": p, **side}
        assert got.model_dump(mode="json") == raw(client, "POST", f"/analysis/{name}", body), name


def test_steering_events_are_stream_events(client):
    body = {"prompt": PROMPT, "max_new_tokens": 3, "temperature": 0.0}
    events = list(client.steer_stream(body))
    assert all(type(e) is StreamEvent for e in events)
    assert [e.type for e in events] == ["start", "token", "token", "token", "done"]
    assert events[1].base.text == events[1].steered.text and events[1].kl == 0.0


def test_saved_directions_are_their_models(client, org, tmp_path, monkeypatch):
    """save, list, get, delete: DirectionInfo, list[DirectionInfo], Direction, as the routes
    answer them (a store in a temporary data directory, the session's own put back after)."""
    session = org.lm.session
    kept = session.directions
    monkeypatch.setattr(org.settings, "data_dirs", [tmp_path])
    session.directions = None
    try:
        d = Direction(name="typed-test", hook="blocks.0.hook_resid_pre",
                      vector=[1.0] + [0.0] * (org.lm.model.cfg.d_model - 1))  # fmt: skip
        info = client.save_direction(d)
        assert type(info) is DirectionInfo and info.name == "typed-test" and info.norm == 1.0
        listed = client.directions()
        assert [type(x) for x in listed] == [DirectionInfo] and listed[0] == info
        assert [x.model_dump(mode="json") for x in listed] == raw(client, "GET", "/directions")
        got = client.direction("typed-test")
        assert type(got) is Direction and got.vector == d.vector
        assert got.model_dump(mode="json") == raw(client, "GET", "/directions/typed-test")
        assert client.delete_direction("typed-test") == {"deleted": "typed-test"}
        assert client.directions() == []
    finally:
        session.directions = kept
