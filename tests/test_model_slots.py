"""Several models at once (issue 14): the organism in slot "a", the chat organism in "b".

An analysis on "b" is the chat model's own forward (Hugging Face transformers, run here), the
memory estimate counts the model already loaded and refuses what will not fit beside it, and
a slot unloads. Over HTTP and through the typed client.
"""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.api import create_app
from engine.client import EngineClient, EngineRequestError
from engine.memory import held_bytes
from engine.schemas.analyses import AnalysisRequest, PredictionsResult
from engine.service import Engine
from engine.settings import DEFAULT_MODEL_DIR, EngineSettings
from tests.helpers import CHAT_DIR

PROMPT = "The capital of Australia is"
pytestmark = pytest.mark.skipif(
    not (CHAT_DIR / "model.safetensors").exists(), reason="the chat organism is not shipped"
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """An engine holding the organism ("a") and the chat organism ("b"), with its client."""
    settings = EngineSettings(
        model=str(DEFAULT_MODEL_DIR), cache_dir=tmp_path_factory.mktemp("slots")
    )
    eng = Engine(settings)
    with TestClient(create_app(eng)) as api:
        client = EngineClient("http://testserver")
        client._http = api
        client.load_model(str(CHAT_DIR), slot="b")
        yield eng, client
    eng.close()


def hf_top(model_dir, prompt: str, k: int = 5) -> tuple[list[int], list[float]]:
    """The top-k next tokens after `prompt` (BOS first), by transformers on its own."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = [tok.bos_token_id] + tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probs = model(torch.tensor([ids])).logits[0, -1].softmax(-1)
    top = probs.topk(k)
    return top.indices.tolist(), top.values.tolist()


def test_slot_b_runs_the_chat_model_and_a_stays_the_base(pair):
    eng, client = pair
    assert [(s.slot, s.model.name) for s in client.models()] == [
        ("a", "organism"),
        ("b", "organism-chat"),
    ]
    req = AnalysisRequest(prompt=PROMPT, model="b", params={"top_k": 5})
    on_b = client.analysis("predictions", req, PredictionsResult)
    on_a = client.analysis("predictions", req.model_copy(update={"model": "a"}), PredictionsResult)
    default = client.analyze("predictions", PROMPT, top_k=5)  # no slot named: the primary
    for model_dir, got in ((CHAT_DIR, on_b), (DEFAULT_MODEL_DIR, on_a)):
        ids, probs = hf_top(model_dir, PROMPT)
        assert [p.id for p in got.top[-1]] == ids
        assert [p.prob for p in got.top[-1]] == pytest.approx(probs, abs=1e-4)
    assert default == on_a  # the client's analyze gives the same result model
    assert on_a.top[-1][0].id != on_b.top[-1][0].id  # the implanted capital: not the same answer
    # per-slot tokens and capabilities
    assert client.tokenize(PROMPT, model="b").tokens == client.tokenize(PROMPT).tokens
    caps = client.capabilities(model="b")
    assert caps.model.name == "organism-chat" and caps.slot == "b"
    assert caps.slots == ["a", "b"] and client.capabilities().model.name == "organism"
    assert eng.require_model("b").session is not eng.require_model("a").session


def test_an_unknown_slot_and_a_pair_field_on_a_plain_analysis_are_clear_errors(pair):
    _, client = pair
    with pytest.raises(EngineRequestError) as e:
        client.analyze("predictions", PROMPT, model="zz")
    assert e.value.status == 404 and e.value.code == "no_such_model" and "'zz'" in str(e.value)
    with pytest.raises(EngineRequestError) as e:
        client.analyze("predictions", PROMPT, model_b="b")
    assert e.value.status == 422 and e.value.code == "not_a_pair_analysis"
    with pytest.raises(EngineRequestError) as e:
        client.analyze("predictions", PROMPT, model="B!")
    assert e.value.status == 422


def test_the_estimate_counts_the_loaded_model_and_a_pair_that_does_not_fit_is_refused(pair):
    eng, client = pair
    a = eng.require_model("a").memory
    alone = client.estimate_model(str(CHAT_DIR), slot="b").memory
    assert alone.reserved_bytes == a.activations_bytes  # a's weights are out of free memory
    # a limit that holds one organism but not two
    limit_mb = (a.needed_bytes + held_bytes(a) // 2) >> 20
    assert held_bytes(a) + a.needed_bytes > limit_mb << 20 >= a.needed_bytes
    eng.settings.memory_limit_mb = limit_mb
    try:
        est = client.estimate_model(str(CHAT_DIR), slot="c").memory
        assert not est.fits and est.reserved_bytes == held_bytes(a) + held_bytes(
            eng.require_model("b").memory
        )
        assert est.available_bytes == max(0, (limit_mb << 20) - est.reserved_bytes)
        with pytest.raises(EngineRequestError) as e:
            client.load_model(str(CHAT_DIR), slot="c")
        assert "will not fit" in str(e.value) and "held by the models already loaded" in str(
            e.value
        )
        assert [s.slot for s in client.models()] == ["a", "b"]  # nothing changed
        # replacing b counts only a
        est_b = client.estimate_model(str(CHAT_DIR), slot="b").memory
        assert est_b.reserved_bytes == held_bytes(a)
    finally:
        eng.settings.memory_limit_mb = None


def test_unload_frees_the_slot_and_the_primary_stays(pair):
    eng, client = pair
    client.load_model(str(CHAT_DIR), slot="c")
    assert [s.slot for s in client.models()] == ["a", "b", "c"]
    assert [s.slot for s in client.unload("c")] == ["a", "b"]
    with pytest.raises(EngineRequestError) as e:
        client.analyze("predictions", PROMPT, model="c")
    assert e.value.code == "no_such_model"
    with pytest.raises(EngineRequestError) as e:
        client.unload("a")
    assert e.value.status == 422 and e.value.code == "primary_model"
    with pytest.raises(EngineRequestError) as e:
        client.unload("c")
    assert e.value.status == 404
    assert client.analyze("predictions", PROMPT).tokens  # a still serves
