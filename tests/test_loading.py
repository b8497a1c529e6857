"""The load path gives the same model as Hugging Face and as TransformerLens built directly."""

from __future__ import annotations

import time

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
from transformers import AutoTokenizer, GPT2LMHeadModel

from engine.errors import EngineError
from engine.loading import load_model, pick_device, weights_hash
from tests.helpers import make_tiny_gpt2

PROMPT = "When Mary and John went to the store, John gave a drink to"


def test_local_dir_logits_match_hugging_face(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    hf = GPT2LMHeadModel.from_pretrained(str(tiny_model_dir))
    tokens = lm.model.to_tokens(PROMPT)
    ours = lm.model(tokens).log_softmax(-1)
    theirs = hf(tokens).logits.log_softmax(-1)
    assert (ours - theirs).abs().max() < 1e-5


def test_local_dir_equals_transformer_lens_built_directly(tiny_model_dir):
    """The config + convert_gpt2_weights route, with from_pretrained's default processing."""
    hf = GPT2LMHeadModel.from_pretrained(str(tiny_model_dir))
    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.n_embd, d_head=c.n_embd // c.n_head, n_heads=c.n_head, d_mlp=4 * c.n_embd,
        n_layers=c.n_layer, n_ctx=c.n_positions, d_vocab=c.vocab_size, act_fn=c.activation_function,
        eps=c.layer_norm_epsilon, normalization_type="LN", original_architecture="GPT2LMHeadModel",
    )  # fmt: skip
    direct = HookedTransformer(cfg, AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    direct.load_and_process_state_dict(convert_gpt2_weights(hf, cfg))
    lm = load_model(str(tiny_model_dir))
    tokens = lm.model.to_tokens(PROMPT)
    assert torch.equal(tokens, direct.to_tokens(PROMPT))
    assert torch.allclose(lm.model(tokens), direct(tokens), atol=1e-5)
    _, ours = lm.model.run_with_cache(tokens)
    _, theirs = direct.run_with_cache(tokens)
    for name in (
        "blocks.1.attn.hook_pattern",
        "blocks.0.hook_resid_post",
        "ln_final.hook_normalized",
    ):
        assert torch.allclose(ours[name], theirs[name], atol=1e-5), name


def test_fingerprint_tracks_weights(tmp_path, tiny_model_dir):
    other = make_tiny_gpt2(tmp_path / "other", seed=1)
    assert weights_hash(other) != weights_hash(tiny_model_dir)
    assert (
        load_model(str(tiny_model_dir)).fingerprint == load_model(str(tiny_model_dir)).fingerprint
    )


def test_device_is_best_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert pick_device() == expected
    assert pick_device("cpu") == "cpu"


def test_unknown_model_name_is_a_clear_404():
    with pytest.raises(EngineError) as e:
        load_model("gpt-7-imaginary")
    assert e.value.status == 404 and e.value.code == "unknown_model"
    assert "neither a local" in e.value.message


def test_uncached_model_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    with pytest.raises(EngineError) as e:
        load_model("gpt2")
    assert e.value.code == "model_not_cached"
    assert "not in the local Hugging Face cache" in e.value.message
    assert time.monotonic() - t0 < 10


def test_bad_dtype_is_refused(tiny_model_dir):
    with pytest.raises(EngineError) as e:
        load_model(str(tiny_model_dir), dtype="int3")
    assert e.value.code == "bad_dtype"
