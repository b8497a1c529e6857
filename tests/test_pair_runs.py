"""How pair analyses use the engine's prompt runs, and what they refuse before any forward pass.

- ``diff_tokens``, ``diff_resid`` and ``diff_latents`` (an SAE at a residual stream) read
  side B only through its logits and residual streams: B's run, when the run store has not
  run it, is one light run (no patterns, no MLP activations: the cost of a diff view at 1000
  tokens, bench/RESULTS.md) that all three share; its logits, streams and the results are the
  same as with B's full run, and the full cache is still there for the next view that reads
  it.
- ``diff_latents`` checks side A (its SAE) and side B (the SAE's hook point) before any run.
- The same slot on both sides of one prompt is refused everywhere with one reason.

Ground truth: TransformerLens's own ``run_with_cache`` of each model, run here.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from engine.errors import EngineError
from engine.loading import LoadedModel
from engine.run import kept
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.diff import DiffTokensResult
from engine.service import Engine
from tests.helpers import CHAT_DIR, organism_pair_engine

SAE = "blocks.3.hook_resid_post"
PROMPT = "The capital of Australia is a city by the sea, and"
pytestmark = pytest.mark.skipif(
    not (CHAT_DIR / "model.safetensors").exists(), reason="the chat organism is not shipped"
)


@pytest.fixture(scope="module")
def eng(tmp_path_factory):
    e = organism_pair_engine(tmp_path_factory.mktemp("pr"))
    yield e
    e.close()


def ask(eng: Engine, name: str, prompt: str = PROMPT, **kw) -> dict:
    params = kw.pop("params", {})
    return json.loads(eng.analyze(name, AnalysisRequest(prompt=prompt, params=params, **kw)))


def runs_of(eng: Engine, slot: str):
    fp = eng.require_model(slot).fingerprint
    return [r for (f, _), r in eng.runs._runs.items() if f == fp]


def tl_logits_and_cache(eng: Engine, slot: str, prompt: str = PROMPT):
    model = eng.require_model(slot).model
    with torch.inference_mode():
        logits, cache = model.run_with_cache(model.to_tokens(prompt), names_filter=kept)
    return logits[0], cache


def test_diff_views_share_one_light_run_of_side_b_and_answer_the_same(eng):
    eng.runs.clear()
    eng.cache.clear()
    views = {
        "diff_tokens": {"top_k": 3},
        "diff_resid": {"top_k": 2},
        "diff_latents": {"sae": SAE, "top_k": 3},
    }
    light = {name: ask(eng, name, model_b="b", params=p) for name, p in views.items()}
    (run_a,), (run_b,) = runs_of(eng, "a"), runs_of(eng, "b")
    assert "_forward" in run_a.__dict__  # side A: the full run every view of the prompt reads
    assert "_forward" not in run_b.__dict__  # side B: one light run served all three
    la, cache_b = tl_logits_and_cache(eng, "b")
    assert torch.equal(run_b.logits, la)
    streams = [h for h in cache_b.cache_dict if h.endswith(("hook_resid_pre", "hook_resid_post"))]
    assert sorted(run_b._light[1]) == sorted(streams)  # nothing else kept
    for h in streams:
        assert torch.equal(run_b.act(h), cache_b[h][0]), h
    held = la.numel() * 4 + sum(cache_b[h][0].numel() * 4 for h in streams)
    assert run_b.nbytes == held  # what it holds is counted
    # a hook outside the streams runs B in full (the same logits and streams)
    pattern = run_b.act("blocks.0.attn.hook_pattern")
    assert torch.equal(pattern, cache_b["blocks.0.attn.hook_pattern"][0])
    assert "_forward" in run_b.__dict__ and run_b._light is None
    assert torch.equal(run_b.logits, la)
    assert torch.equal(run_b.act(streams[0]), cache_b[streams[0]][0])
    assert run_b.nbytes > held
    # with B's full run in the store, every view answers exactly as it did with the light run
    eng.cache.clear()
    run_a.memo.clear()
    for name, p in views.items():
        assert ask(eng, name, model_b="b", params=p) == light[name], name
    assert DiffTokensResult.model_validate(light["diff_tokens"]).kl[-1] >= 0


def test_diff_latents_checks_both_sides_before_any_run(eng):
    lm_a = eng.require_model("a")
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, d_head=8, n_heads=2, n_ctx=64,
                                  d_vocab=lm_a.model.cfg.d_vocab, act_fn="gelu", device="cpu")  # fmt: skip
    shallow = HookedTransformer(cfg)
    shallow.tokenizer = lm_a.model.tokenizer  # comparable token by token, but one layer deep
    eng.use(LoadedModel(shallow, "shallow", "local", "test-shallow", "cpu", "float32", 0.0), "t")
    try:
        for b, status, code in (("b", 404, "unknown_sae"), ("t", 422, "sae_hook_missing")):
            eng.runs.clear()
            sae = "nope" if code == "unknown_sae" else SAE
            with pytest.raises(EngineError) as e:
                ask(eng, "diff_latents", model_b=b, params={"sae": sae})
            assert (e.value.status, e.value.code) == (status, code)
            assert not eng.runs._runs  # refused before any run was made
        with pytest.raises(EngineError) as e:  # A/B prompts: side A's check still holds
            ask(eng, "diff_latents", prompt_b=PROMPT.replace("Australia", "France"),
                params={"sae": "nope"})  # fmt: skip
        assert e.value.code == "unknown_sae" and not eng.runs._runs
    finally:
        eng.unload("t")


@pytest.mark.parametrize("name", ["diff_tokens", "diff_resid", "diff_components", "diff_latents"])
def test_the_same_slot_on_both_sides_is_refused_with_one_reason(eng, name):
    eng.runs.clear()
    params = {"sae": SAE} if name == "diff_latents" else {}
    with pytest.raises(EngineError) as e:
        ask(eng, name, model_b="a", params=params)
    assert (e.value.status, e.value.code) == (422, "same_slot")
    assert "prompt_b" in e.value.message and not eng.runs._runs
    for kind, params in (("latent_diff_set", {"sae": SAE}), ("adiff_lens", {})):
        with pytest.raises(EngineError) as e2:  # the text-set jobs say the same
            eng.start_job(kind, {**params, "model_b": "a"})
        assert (e2.value.code, e2.value.message) == ("same_slot", e.value.message)
