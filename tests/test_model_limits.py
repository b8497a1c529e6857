"""The context cap and the memory estimate: real configs, nothing allocated for big ones."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformerConfig
from transformers import AutoModelForCausalLM, GPT2LMHeadModel, LlamaConfig

from engine import memory
from engine.errors import EngineError
from engine.loading import load_model, plan_load
from engine.service import Engine
from engine.settings import EngineSettings
from tests import real_models as rm

PROMPT = "When Mary and John went to the store, John gave a drink to Mary."


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return rm.save_model(rm.llama3(), tmp_path_factory.mktemp("cap") / "checkpoint-500")


def test_long_context_model_is_capped(llama_dir):
    """131072 positions: the masks are built for the cap, not 131072^2 (64 GiB before)."""
    lm = load_model(str(llama_dir), device="cpu")
    assert lm.model_max_context == 131072 and lm.n_ctx == 2048
    assert lm.model.blocks[0].attn.mask.shape == (2048, 2048)
    assert lm.model.blocks[0].attn.rotary_sin.shape[0] == 2048
    assert any("capped at 2048" in n for n in lm.notes)
    assert load_model(str(llama_dir), device="cpu", max_context=64).n_ctx == 64


def test_prompt_past_the_cap_is_a_clear_422(llama_dir, tmp_path):
    eng = Engine(EngineSettings(model=str(llama_dir), cache_dir=tmp_path, max_context=16))
    try:
        assert eng.model_info().n_ctx == 16 and eng.model_info().model_max_context == 131072
        with pytest.raises(EngineError) as e:
            eng.tokenize(PROMPT)
        assert e.value.status == 422 and e.value.code == "prompt_too_long"
        assert "context cap is 16 tokens" in e.value.message and "131072" in e.value.message
    finally:
        eng.close()


def test_learned_positions_are_cut_to_the_cap(tmp_path):
    """GPT-2's position table (256 rows) is truncated to a smaller cap, never extended past
    its size by a larger one, and the logits still equal Hugging Face's."""
    model_dir = rm.save_model(rm.gpt2(), tmp_path / "gpt2")
    assert load_model(str(model_dir), max_context=100_000).n_ctx == 256
    lm = load_model(str(model_dir), max_context=32)
    assert lm.n_ctx == 32 and lm.model.W_pos.shape == (32, 64)
    hf = GPT2LMHeadModel.from_pretrained(str(model_dir))
    tokens = lm.model.to_tokens(PROMPT)[:, :32]
    ours, theirs = lm.model(tokens).log_softmax(-1), hf(tokens).logits.log_softmax(-1)
    assert (ours - theirs).abs().max() < 1e-4


def _hf_param_count(config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())


def test_estimate_counts_the_real_parameters(llama_dir):
    """Our count from the HookedTransformer config against HF's own, for a 70B shape (built
    on the meta device) and a tiny one (the unembedding counts even when tied: HT unties)."""
    big = LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
    )  # fmt: skip
    plan = plan_load(str(_config_only(big, llama_dir.parent / "Llama-70B")), device="cpu",
                     dtype="float32", max_context=2048)  # fmt: skip
    ours, theirs = memory.n_params(plan.cfg), _hf_param_count(big)
    assert abs(ours - theirs) / theirs < 1e-3
    assert memory.estimate(plan.cfg, "cpu").weights_bytes == ours * 4


def _config_only(config, out_dir):
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(str(out_dir))
    return out_dir


def test_too_large_model_is_refused_before_loading(tmp_path):
    """A Llama-3-70B config (no weights at all): refused from its config with the numbers."""
    big = LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
        rope_theta=500000.0,
    )  # fmt: skip
    with pytest.raises(EngineError) as e:
        load_model(str(_config_only(big, tmp_path / "Meta-Llama-3-70B")), device="cpu")
    assert e.value.status == 422 and e.value.code == "model_too_large"
    assert "GiB" in e.value.message and "bfloat16" in e.value.message
    detail = e.value.detail
    assert detail["weights_bytes"] > 280e9 and not detail["fits"]
    assert detail["needed_bytes"] > detail["available_bytes"]


def test_context_cap_that_fits_is_suggested():
    """When the weights fit but the activations at the cap do not, the refusal names the
    longest cap that fits, and that cap's estimate does fit."""
    cfg = HookedTransformerConfig(
        n_layers=16, d_model=2048, n_ctx=8192, d_head=64, n_heads=32, d_mlp=8192,
        d_vocab=128256, act_fn="silu", positional_embedding_type="rotary", gated_mlp=True,
    )  # fmt: skip
    free = 40 << 30
    est = memory.estimate(cfg, "cpu", available=free)
    assert not est.fits and est.load_peak_bytes < free
    cap = memory.largest_context_that_fits(cfg, free)
    assert 128 <= cap < 8192
    fits = HookedTransformerConfig.from_dict({**cfg.to_dict(), "n_ctx": cap})
    assert memory.estimate(fits, "cpu", available=free).fits
    over = HookedTransformerConfig.from_dict({**cfg.to_dict(), "n_ctx": cap + 128})
    assert not memory.estimate(over, "cpu", available=free).fits


def test_real_size_on_cpu_says_it_will_be_slow():
    cfg = HookedTransformerConfig(
        n_layers=16, d_model=2048, n_ctx=256, d_head=64, n_heads=32, d_mlp=8192,
        d_vocab=128256, act_fn="silu", positional_embedding_type="rotary", gated_mlp=True,
    )  # fmt: skip
    assert memory.estimate(cfg, "cpu", available=1 << 40).slow_on_cpu
    assert not memory.estimate(cfg, "cuda", available=1 << 40).slow_on_cpu


def test_estimate_endpoint_before_loading(api, engine, llama_dir, tmp_path, monkeypatch):
    """/models/estimate answers from the config alone: the path, the cap and the memory; it
    reads model directories only inside the data directories, as loading does."""
    r = api.post("/models/estimate", json={"name": str(llama_dir)})
    assert r.status_code == 403 and r.json()["error"]["code"] == "path_not_allowed"
    data_dirs = [*engine.settings.data_dirs, llama_dir.parent, tmp_path]
    monkeypatch.setattr(engine.settings, "data_dirs", data_dirs)
    r = api.post("/models/estimate", json={"name": str(llama_dir), "max_context": 512})
    assert r.status_code == 200, r.text
    est = r.json()
    assert est["path"] == "hooked" and est["n_ctx"] == 512 and est["model_max_context"] == 131072
    assert est["memory"]["fits"] and "GiB" in est["summary"]
    big = LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
        num_key_value_heads=8, vocab_size=128256,
    )  # fmt: skip
    r = api.post("/models/estimate", json={"name": str(_config_only(big, tmp_path / "l70"))})
    assert r.status_code == 200 and not r.json()["memory"]["fits"]
    assert r.json()["memory"]["weights_bytes"] > 280e9


def test_n_devices_needs_that_many_gpus(llama_dir):
    with pytest.raises(EngineError) as e:
        load_model(str(llama_dir), device="cpu", n_devices=2)
    assert e.value.status == 422 and e.value.code == "bad_n_devices"
    assert "CUDA GPUs" in e.value.message


def test_default_cap_is_lowered_to_fit_but_an_explicit_one_is_refused(llama_dir, monkeypatch):
    """With 100 MB free, the default cap (2048: 270 MB of attention activations for this tiny
    Llama) is lowered to the longest that fits, with a note; the same cap asked for explicitly
    is refused, naming the cap that would fit."""
    monkeypatch.setattr(memory, "available_bytes", lambda device, n=1: 100 << 20)
    lm = load_model(str(llama_dir), device="cpu")
    assert 256 <= lm.n_ctx < 2048 and lm.memory.fits
    assert lm.model.blocks[0].attn.mask.shape == (lm.n_ctx, lm.n_ctx)
    assert any("lowered from 2048" in n for n in lm.notes)
    with pytest.raises(EngineError) as e:
        load_model(str(llama_dir), device="cpu", max_context=2048)
    assert e.value.code == "model_too_large"
    assert f"A context cap of {lm.n_ctx} tokens would fit" in e.value.message


def test_prompt_runs_kept_within_the_activation_estimate(tiny_model_dir):
    """The engine keeps recent prompts' caches, but no more bytes of them than the memory
    estimate's activation budget (the newest always kept)."""

    from engine.run import RunStore

    lm = load_model(str(tiny_model_dir))
    store, prompts = RunStore(max_runs=8), [[1, 5, 6, 7], [1, 8, 9, 10], [1, 11, 12, 13]]
    first = store.get(lm, prompts[0], [])
    assert first.nbytes == 0  # nothing held before it runs
    _ = first.cache
    lm.memory = lm.memory.model_copy(update={"activations_bytes": first.nbytes})  # one run
    for ids in prompts[1:]:
        _ = store.get(lm, ids, []).cache
    store.get(lm, [1, 14], [])
    assert [k[1] for k in store._runs] == [(1, 11, 12, 13), (1, 14)]  # one run's worth
    lm.memory = lm.memory.model_copy(update={"activations_bytes": 3 * first.nbytes})
    for ids in prompts:
        _ = store.get(lm, ids, []).cache
    assert len(store._runs) == 4
