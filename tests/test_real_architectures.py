"""Real architectures load from local directories with their own configs, and every view's
numbers match the Hugging Face model itself.

Each family is a tiny random-weight model (tests/real_models.py) saved with save_pretrained
and loaded by the engine's own code path (an Engine on the directory). Folder names are the
ones that broke loading: a Llama in a folder named like no official model but containing
"llama", one named like an official model with fewer layers, a Gemma-2 in "my-gemma2".
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine.schemas.analyses import AnalysisRequest
from engine.service import Engine
from engine.settings import EngineSettings
from tests import real_models as rm

PROMPT = "When Mary and John went to the store, John gave a drink to Mary. The capital of France is"
CASES = {  # folder name: family
    "gpt2-no-nctx": "gpt2",
    "pythia-finetune": "pythia",
    "tinyllama-ft": "llama",
    "Llama-3.2-1B": "llama",
    "my-gemma2": "gemma2",
    "gemma-3-1b-sft": "gemma3",
    "qwen2-run3": "qwen2",
    "mistral-sft": "mistral",
}


@pytest.fixture(scope="module", params=list(CASES))
def loaded(request, tmp_path_factory):
    folder = request.param
    root = tmp_path_factory.mktemp("real")
    model_dir = rm.save_model(rm.FAMILIES[CASES[folder]](), root / folder)
    eng = Engine(EngineSettings(model=str(model_dir), cache_dir=root / "cache"))
    hf = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    yield eng, hf
    eng.close()


def _analyze(eng: Engine, name: str, **params) -> dict:
    return json.loads(eng.analyze(name, AnalysisRequest(prompt=PROMPT, params=params)))


def _final_norm(hf):
    base = getattr(hf, "model", None) or hf.base_model  # Gemma-3's base_model is itself
    name = next(n for n in ("norm", "ln_f", "final_layer_norm") if hasattr(base, n))
    return getattr(base, name)


def _hf_run(eng: Engine, hf):
    ids, _ = eng.tokenize(PROMPT)
    with torch.no_grad():
        out = hf(
            torch.tensor([ids]), output_attentions=True, output_hidden_states=True, use_cache=False
        )
    return ids, out


def test_config_is_the_directorys_own(loaded):
    eng, hf = loaded
    cfg, c = eng.require_model().model.cfg, hf.config
    assert cfg.n_layers == c.num_hidden_layers == 2
    assert cfg.d_vocab == c.vocab_size and cfg.d_model == c.hidden_size
    assert eng.require_model().path == "hooked"


def test_predictions_match_hugging_face(loaded):
    eng, hf = loaded
    ids, out = _hf_run(eng, hf)
    theirs = out.logits[0].log_softmax(-1)
    ours = _analyze(eng, "predictions", top_k=5)
    for pos, top in enumerate(ours["top"]):
        assert [p["id"] for p in top] == theirs[pos].topk(5).indices.tolist()
        got = torch.tensor([p["prob"] for p in top]).log()
        assert torch.allclose(got, theirs[pos].topk(5).values, atol=1e-4), pos
    nll = -theirs[:-1].gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    assert ours["mean_loss"] == pytest.approx(float(nll.mean()), abs=1e-4)


def test_attention_patterns_match_hugging_face(loaded):
    """The patterns every attention view reads (the engine's prompt run) against HF's
    output_attentions; Gemma-2's sliding window (6) is shorter than the prompt."""
    eng, hf = loaded
    ids, out = _hf_run(eng, hf)
    lm = eng.require_model()
    run = eng.runs.get(lm, ids, eng.tokenize(PROMPT)[1])
    assert len(ids) > 12
    for layer, theirs in enumerate(out.attentions):
        ours = eng.compute(lambda layer=layer: run.cache["pattern", layer])
        assert torch.allclose(ours, theirs[0], atol=1e-5), layer


def test_logit_lens_matches_hugging_face(loaded):
    """Layer 0's residual stream read through HF's own final norm and unembedding (and
    soft cap): the engine's logit lens gives the same top tokens and probabilities."""
    eng, hf = loaded
    _, out = _hf_run(eng, hf)
    with torch.no_grad():
        lens = hf.get_output_embeddings()(_final_norm(hf)(out.hidden_states[1])[0])
        cap = getattr(hf.config, "final_logit_softcapping", None)
        if cap:
            lens = cap * torch.tanh(lens / cap)
    theirs = lens.softmax(-1)
    ours = _analyze(eng, "logit_lens", stage="resid_post", top_k=3)
    for pos, top in enumerate(ours["top"][0]):
        assert [p["id"] for p in top] == theirs[pos].topk(3).indices.tolist(), pos
        if not cap:  # the lens readout skips the soft cap (issue 11, views helper)
            got = torch.tensor([p["prob"] for p in top])
            assert torch.allclose(got, theirs[pos].topk(3).values, atol=1e-4), pos


def test_dla_sums_to_the_hugging_face_logit_difference(loaded):
    """Every head's, MLP's and embedding's share plus b_U sum to HF's own logit difference
    (before a soft cap; a difference, since the centred unembedding shifts each logit by the
    same amount), so the decomposition accounts for the whole prediction."""
    eng, hf = loaded
    _, out = _hf_run(eng, hf)
    pos = 5
    res = _analyze(eng, "dla", pos=pos, target=7, baseline=3)
    logits = out.logits[0, pos].double()
    cap = getattr(hf.config, "final_logit_softcapping", None)
    if cap:
        logits = cap * torch.atanh(logits / cap)
    diff = float(logits[7] - logits[3])
    assert res["total"] == pytest.approx(diff, abs=1e-3)
    assert res["model_value"] == pytest.approx(diff, abs=1e-3)
    parts = sum(map(sum, res["heads"])) + sum(res["mlps"]) + sum(res["attn_bias"])
    parts += res["embed"] + res["pos_embed"] + res["unembed_bias"]
    assert parts == pytest.approx(res["total"], abs=1e-4)
    if hf.config.model_type == "gemma2":  # no attention bias: heads through ln1_post are all
        assert max(abs(b) for b in res["attn_bias"]) < 1e-4


@pytest.fixture(scope="module")
def bridged(tmp_path_factory):
    """GPTBigCode (StarCoder's architecture), which HookedTransformer has no conversion for."""
    from transformers import GPTBigCodeConfig

    root = tmp_path_factory.mktemp("bridge")
    config = GPTBigCodeConfig(n_embd=64, n_layer=2, n_head=4, n_positions=512, **rm.TOKENS)
    model_dir = rm.save_model(config, root / "starcoder-tiny")
    eng = Engine(EngineSettings(model=str(model_dir), cache_dir=root / "cache"))
    hf = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    yield eng, hf
    eng.close()


def test_unknown_architecture_loads_through_the_bridge(bridged):
    eng, hf = bridged
    info = eng.model_info()
    assert info.path == "bridge" and info.n_layers == 2
    caps = eng.capabilities().features
    assert not caps["transcoders"].available and "TransformerBridge" in caps["transcoders"].reason
    assert caps["attention"].available and caps["dla"].available
    assert not caps["attribution_graph"].available
    from engine.errors import EngineError

    with pytest.raises(EngineError) as e:
        eng.start_job("attribution_graph", {"prompt": PROMPT})
    assert e.value.status == 422 and "TransformerBridge" in e.value.message


def test_bridge_views_match_hugging_face(bridged):
    eng, hf = bridged
    ids, out = _hf_run(eng, hf)
    theirs = out.logits[0].log_softmax(-1)
    ours = _analyze(eng, "predictions", top_k=3)
    for pos, top in enumerate(ours["top"]):
        assert [p["id"] for p in top] == theirs[pos].topk(3).indices.tolist()
    run = eng.runs.get(eng.require_model(), ids, eng.tokenize(PROMPT)[1])
    for layer, pattern in enumerate(out.attentions):
        assert torch.allclose(run.cache["pattern", layer], pattern[0], atol=1e-5)
    res = _analyze(eng, "dla", pos=5, target=7, baseline=3)
    diff = float(out.logits[0, 5, 7] - out.logits[0, 5, 3])
    assert res["total"] == pytest.approx(diff, abs=1e-3)
    lens = _analyze(eng, "logit_lens", stage="resid_post", top_k=1)
    assert [c[0]["id"] for c in lens["top"][-1]] == out.logits[0].argmax(-1).tolist()


def test_bridge_generation_matches_hugging_face(bridged):
    """Each step of a continuation on the bridge samples from Hugging Face's distribution
    given the whole sequence so far (the bridge ignores a TransformerLens KV cache, so the
    engine recomputes the sequence instead)."""
    from engine.schemas.steering import SteerRequest
    from engine.steering import Continuation

    eng, hf = bridged
    ids = eng.tokenize(PROMPT)[0]
    req = SteerRequest(prompt=PROMPT, max_new_tokens=4, temperature=1.0, seed=3)
    cont, seq = Continuation(eng.require_model(), ids, [], req), torch.tensor([ids])
    step = torch.inference_mode()(cont.step)  # as generate_pair runs it
    with torch.inference_mode():
        for _ in range(4):
            token, logprobs = eng.compute(step)
            theirs = hf(seq).logits[0, -1].log_softmax(-1)
            assert torch.allclose(logprobs, theirs, atol=1e-4)
            seq = torch.cat([seq, torch.tensor([[token]])], 1)


def test_a_wrong_conversion_is_caught_and_bridged(tmp_path, monkeypatch):
    """If the HookedTransformer config missed a field (here Llama 3's rope theta and
    scaling), its outputs on the probe differ from Hugging Face's: the loader says so and
    takes TransformerBridge instead of serving wrong numbers."""
    from engine import hf_config
    from engine.loading import load_model

    model_dir = rm.save_model(rm.llama3(), tmp_path / "llama-ft")
    monkeypatch.setitem(hf_config.FIXES, "LlamaForCausalLM", lambda hf: {"rotary_base": 10000.0})
    lm = load_model(str(model_dir))
    assert lm.path == "bridge"
    hf = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    tokens = torch.tensor([list(range(1, 40))])
    with torch.no_grad():
        gap = (lm.model(tokens).log_softmax(-1) - hf(tokens).logits.log_softmax(-1)).abs().max()
    assert gap < 1e-4


def test_bridge_keeps_weights_unprocessed_when_processing_breaks_them(tmp_path, monkeypatch):
    """TransformerLens 3.2.1's weight processing on the bridge's Gemma-3 changes its outputs
    (0.49 nats on the probe): with Gemma-3 sent to the bridge (its HookedTransformer builder
    removed), the engine leaves processing off, so the numbers stay Hugging Face's, and
    refuses DLA, saying why."""
    from engine import hf_config
    from engine.errors import EngineError

    monkeypatch.delitem(hf_config.BUILDERS, "Gemma3ForCausalLM")
    model_dir = rm.save_model(rm.gemma3(), tmp_path / "gemma3-ft")
    eng = Engine(EngineSettings(model=str(model_dir), cache_dir=tmp_path / "cache"))
    try:
        assert eng.require_model().path == "bridge"
        hf = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager")
        _, out = _hf_run(eng, hf.eval())
        theirs = out.logits[0].log_softmax(-1)
        ours = _analyze(eng, "predictions", top_k=3)
        for pos, top in enumerate(ours["top"]):
            got = torch.tensor([p["prob"] for p in top]).log()
            assert torch.allclose(got, theirs[pos].topk(3).values, atol=1e-4), pos
        dla = eng.capabilities().features["dla"]
        assert not dla.available and "weight processing" in dla.reason
        with pytest.raises(EngineError) as e:
            _analyze(eng, "dla", pos=3)
        assert e.value.status == 422 and "weight processing" in e.value.message
    finally:
        eng.close()


def test_cached_repository_without_an_official_name_loads_its_own_config(tmp_path, monkeypatch):
    """A hub repository TransformerLens has no name for, in the local Hugging Face cache
    (snapshots/<commit>/), loads from there with its own config, offline."""
    import huggingface_hub.constants

    from engine.loading import load_model

    hub = tmp_path / "hub"
    repo = hub / "models--someone--llama-sft"
    rm.save_model(rm.llama3(), repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = load_model("someone/llama-sft")
    assert lm.name == "someone/llama-sft" and lm.n_layers == 2 and lm.path == "hooked"
    assert lm.fingerprint.startswith("someone/llama-sft@")


@pytest.fixture(scope="module")
def gemma2(tmp_path_factory):
    root = tmp_path_factory.mktemp("snippet")
    config = rm.gemma2()
    config.final_logit_softcapping = 2.0  # low enough to bend this model's logits (< 1)
    model_dir = rm.save_model(config, root / "my-gemma2")
    eng = Engine(EngineSettings(model=str(model_dir), cache_dir=root / "cache"))
    yield eng
    eng.close()


def test_lens_and_dla_snippets_recompute_gemma2_with_its_soft_cap(gemma2, tmp_path):
    """The bundles' whole snippets, header included, on a local Gemma-2 directory: the header
    loads it with the engine's own loading functions (TransformerLens's loader by name does
    not take a local Gemma directory), and the bodies run the engine's lens (soft cap applied)
    and DLA (post-attention norm): the engine's numbers."""
    import inspect

    from components import bundles, snippets
    from components.dla_figures import bar_terms
    from engine import hf_config, loading
    from engine.client import RESULTS
    from tests.snippet_checks import assert_recomputes, run_snippet

    model = gemma2.lm.model
    assert model.cfg.output_logits_soft_cap > 0 and model.cfg.use_normalization_before_and_after

    def result(name: str, **params):  # as the app's client gives it
        return RESULTS[name].model_validate(_analyze(gemma2, name, **params))

    grid = result("logit_lens", stage="resid_mid", top_k=3, start=1, width=6)
    traces = result("logit_lens_targets", stage="resid_pre", pos=4, targets=[7, 3])
    dla = result("dla", pos=5, target=7, baseline=3)
    terms = bar_terms(dla) + [("total", dla.total)]
    ref = bundles.ModelRef.from_info(gemma2.model_info())
    header = bundles.snippet(ref, PROMPT, bundles.BundleSpec(data={}, code=""), "t")
    assert (
        ref.local and "my-gemma2" in ref.ref and "HookedTransformer.from_pretrained" not in header
    )
    for fn in (hf_config.config_dict, hf_config._gemma2, loading.converted_state_dict):
        assert inspect.getsource(fn) in header  # the engine's own, not a copy
    for spec in (
        snippets.logit_lens(grid),
        snippets.lens_targets(traces),
        snippets.dla_heads(dla),
        snippets.dla_terms(dla, terms),
    ):
        assert_recomputes(spec, run_snippet(spec, gemma2, PROMPT, tmp_path))
