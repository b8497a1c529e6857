"""Steering on the demo organism: coefficient 0 is the baseline, the sentiment direction moves
continuations' sentiment more as its coefficient grows, conditions gate, the stream is NDJSON.

Coefficients are scaled from the model at test time (the residual norm over the contrastive
vector's norm), never hard-coded, so the tests hold for a retrained organism.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from components import steering_setup as ss
from engine import steering, steering_stream
from engine.api import create_app
from engine.errors import EngineError
from engine.schemas.steering import (
    Condition,
    SteeringVector,
    SteerRequest,
    StreamEvent,
    StreamToken,
)
from engine.service import Engine
from organism import corpus, metrics

ORGANISM = Path(__file__).resolve().parents[1] / "assets" / "organism"
SAE_HOOK = "blocks.1.hook_resid_post"
STEER_HOOK = "blocks.0.hook_resid_post"
SAD = "Once upon a time, there was a sad dog named Max."
pytestmark = pytest.mark.skipif(
    not (ORGANISM / "saes" / SAE_HOOK).is_dir(), reason="organism not shipped"
)


@pytest.fixture(scope="module")
def openings():
    pairs = metrics.sentiment_prompts(16, seed=5)
    return [o for m, o in pairs if m == "happy"], [o for m, o in pairs if m == "sad"]


def run(org: Engine, req: SteerRequest) -> list[steering.Step]:
    ids, _ = org.tokenize(req.prompt)
    return list(steering.generate_pair(org.lm, ids, steering.resolve(org.lm, req.vectors), req))


def latent_vector(coef: float, **kw) -> SteeringVector:
    return SteeringVector(kind="sae_latent", sae=SAE_HOOK, index=0, coefficient=coef, **kw)


def test_coefficient_zero_is_exactly_the_baseline(org):
    for seed in range(2):
        req = SteerRequest(prompt=SAD, vectors=[latent_vector(0.0)], max_new_tokens=15, seed=seed)
        steps = run(org, req)
        assert [s.steered for s in steps] == [s.base for s in steps]
        assert all(s.kl == 0.0 for s in steps)
        moved = run(org, req.model_copy(update={"vectors": [latent_vector(30.0)]}))
        assert [s.base for s in moved] == [s.base for s in steps]  # the kept baseline
        assert [s.steered for s in moved] != [s.steered for s in steps]


def test_baseline_equals_transformerlens_generate(org):
    req = SteerRequest(prompt=SAD, max_new_tokens=20, temperature=0, stop_at_eos=False)
    ids, _ = org.tokenize(SAD)
    want = org.lm.model.generate(
        torch.tensor([ids]), max_new_tokens=20, do_sample=False, stop_at_eos=False, verbose=False
    )[0, len(ids) :].tolist()
    steps = run(org, req.model_copy(update={"vectors": [latent_vector(0.0)]}))
    assert [s.base for s in steps] == want == [s.steered for s in steps]


def _happy_share(org, openings, coef: float, seeds: int = 4) -> float:
    happy, sad = openings
    vec = SteeringVector(
        kind="contrastive", positive=happy, negative=sad, hook=STEER_HOOK, coefficient=coef
    )
    h = s = 0
    for seed in range(seeds):
        req = SteerRequest(prompt=SAD, vectors=[vec], max_new_tokens=24, seed=seed)
        toks = [x.steered for x in run(org, req) if x.steered is not None]
        dh, ds = metrics.sentiment_counts(org.lm.model.tokenizer.decode(toks))
        h, s = h + dh, s + ds
    return h / (h + s) if h + s else 0.5


def test_sentiment_direction_moves_sentiment_with_the_coefficient(org, openings):
    happy, sad = openings
    vec = steering.contrastive(org.lm, happy, sad, STEER_HOOK)
    with torch.no_grad():
        _, cache = org.lm.model.run_with_cache(org.lm.model.to_tokens(happy + sad))
    unit = float(cache[STEER_HOOK][:, 1:].norm(dim=-1).mean()) / float(vec.norm())
    shares = []
    for f in (0, 0.15, 0.3, 0.45, 0.6):  # stop once continuations are happy
        shares.append(_happy_share(org, openings, f * unit))
        if shares[-1] >= 0.8:
            break
    assert shares[0] < 0.2, shares  # a sad opening continues sad
    assert shares[-1] >= 0.8, f"steering never made continuations happy: {shares}"
    assert all(b >= a - 0.1 for a, b in zip(shares, shares[1:], strict=False)), shares


def test_happy_and_sad_word_lists_are_the_corpus_ones():
    assert "happy" in corpus.HAPPY_WORDS and "sad" in corpus.SAD_WORDS


def test_condition_gates_the_vector(org):
    big = latent_vector(50.0, hook=SAE_HOOK)
    never = big.model_copy(update={"condition": Condition(sae=SAE_HOOK, index=0, threshold=1e6)})
    req = SteerRequest(prompt=SAD, vectors=[never], max_new_tokens=15, seed=1)
    steps = run(org, req)
    assert [s.steered for s in steps] == [s.base for s in steps]
    always = big.model_copy(update={"condition": Condition(sae=SAE_HOOK, index=0, threshold=0)})
    ids, _ = org.tokenize(SAD)
    with torch.no_grad():
        _, cache = org.lm.model.run_with_cache(torch.tensor([ids]))
    from engine import saes

    d = saes.for_model(org.lm).get(SAE_HOOK)
    fires = d.encode(cache[SAE_HOOK][0]).argmax(-1)[-1]  # a latent firing at the last token
    always.condition.index = int(fires)
    gated = run(org, req.model_copy(update={"vectors": [always]}))
    assert gated[0].kl > 0  # it fires on the prompt, so the first step changes


def test_condition_after_the_hook_is_refused(org):
    v = latent_vector(1.0, hook="blocks.0.hook_resid_post")
    v.condition = Condition(sae=SAE_HOOK, index=0)
    with pytest.raises(EngineError) as e:
        steering.resolve(org.lm, [v])
    assert e.value.code == "condition_after_hook"


def test_transcoder_latent_vector_writes_at_mlp_out(org):
    v = SteeringVector(kind="transcoder_latent", layer=1, index=3, coefficient=2.0)
    (r,) = steering.resolve(org.lm, [v])
    assert r.hook == "blocks.1.hook_mlp_out"


def test_stream_api(org):
    with TestClient(create_app(org)) as api:
        body = {"prompt": SAD, "max_new_tokens": 8, "seed": 2, "stop_at_eos": False,
                "vectors": [latent_vector(0.0).model_dump()]}  # fmt: skip
        with api.stream("POST", "/steering/generate", json=body) as r:
            assert r.headers["content-type"].startswith("application/x-ndjson")
            events = [json.loads(line) for line in r.iter_lines() if line]
        assert events[0]["type"] == "start" and events[0]["vectors"][0]["hook"] == SAE_HOOK
        tokens = [e for e in events if e["type"] == "token"]
        assert len(tokens) == 8 and all(e["base"] == e["steered"] for e in tokens)
        assert events[-1]["type"] == "done"
        bad = dict(
            body, vectors=[latent_vector(1.0, hook="blocks.0.attn.hook_pattern").model_dump()]
        )
        r = api.post("/steering/generate", json=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_hook_point"


def test_probe_condition_gates_like_its_projection(org, openings):
    happy, sad = openings
    vec = latent_vector(30.0)
    req = SteerRequest(prompt=SAD, vectors=[vec], max_new_tokens=12, seed=4)
    plain = [s.steered for s in run(org, req)]
    probe = {"probe_hook": "blocks.0.hook_resid_post", "positive": happy, "negative": sad}
    always = vec.model_copy(update={"condition": Condition(threshold=-1e9, **probe)})
    never = vec.model_copy(update={"condition": Condition(threshold=1e9, **probe)})
    assert [s.steered for s in run(org, req.model_copy(update={"vectors": [always]}))] == plain
    gated = run(org, req.model_copy(update={"vectors": [never]}))
    assert [s.steered for s in gated] == [s.base for s in gated]


def test_streamed_text_keeps_characters_split_over_tokens(org):
    """Byte-level BPE splits 'é' or '☃' over tokens: the stream hands each character out whole
    once its last byte arrives, and the pieces join to the tokenizer's decode of all ids."""
    tok = org.lm.model.tokenizer
    text = "café ☃ naïve → done"
    ids = tok.encode(text, add_special_tokens=False)
    assert any("\ufffd" in tok.decode([i]) for i in ids)  # the old per-token decode broke it
    so_far = steering_stream.TextSoFar(tok)
    pieces = [so_far.push(i).text for i in ids]
    assert "".join(pieces) + so_far.rest() == text
    assert not any("\ufffd" in p for p in pieces)
    cut = steering_stream.TextSoFar(tok)  # a continuation that ends inside a character
    held = [
        cut.push(i).text for i in ids[: ids.index(tok.encode(" ☃", add_special_tokens=False)[-1])]
    ]
    assert "\ufffd" not in "".join(held) and cut.rest().endswith("\ufffd")
    events = [
        StreamEvent(type="token", base=StreamToken(id=0, text=p), steered=StreamToken(id=0, text=p),
                    kl=0.0)
        for p in held
    ]  # fmt: skip
    events.append(StreamEvent(type="done", base_rest=cut.rest(), steered_rest=cut.rest()))
    assert ss.collect(events)["base"] == tok.decode(ids[: len(held)])
