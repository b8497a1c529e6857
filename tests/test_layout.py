"""The forward pass without weight copies (engine/layout.py): the same model, no weight copied.

Ground truth: TransformerLens's own forward pass of an untouched copy of each model (GPT-2
style attention, and Llama-style grouped-query attention with RMSNorm and rotary), compared
bit for bit up to the unembedding (the logits to 1e-6: one addmm instead of F.linear on a
copy); and torch's profiler, which sees every copy the forward pass makes.
"""

from __future__ import annotations

import copy

import einops
import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from transformer_lens import HookedTransformer, HookedTransformerConfig

from engine.layout import forward_layout
from engine.loading import LoadedModel
from engine.service import Engine
from engine.settings import EngineSettings

SHAPES = {
    "gpt2": dict(n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=97,
                 act_fn="gelu_new", normalization_type="LN"),
    "llama-gqa": dict(n_layers=2, d_model=32, d_head=8, n_heads=4, n_key_value_heads=2,
                      d_mlp=64, d_vocab=97, act_fn="silu", normalization_type="RMS",
                      positional_embedding_type="rotary", gated_mlp=True, final_rms=True),
}  # fmt: skip


def tiny(shape: str) -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_ctx=64, device="cpu", seed=0, **SHAPES[shape])
    return HookedTransformer(cfg).eval()


def weight_shapes(model: HookedTransformer) -> set[tuple[int, ...]]:
    """The shapes a rearranged weight has when the forward pass copies it."""
    a = model.blocks[0].attn
    out = {tuple(model.unembed.W_U.T.shape)}
    for p in (a.W_Q, a.W_O, getattr(a, "_W_K", a.W_K)):
        out |= {tuple(p.shape), tuple(p.permute(0, 2, 1).shape), tuple(p.permute(2, 0, 1).shape)}
    return out


def weight_copies(model: HookedTransformer, tokens: torch.Tensor) -> int:
    with (
        torch.inference_mode(),
        profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p,
    ):
        model(tokens)
    shapes = weight_shapes(model)
    return sum(
        1
        for e in p.events()
        if e.name == "aten::copy_" and e.input_shapes and tuple(e.input_shapes[0]) in shapes
    )


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_laid_out_model_computes_the_same_without_copying_weights(shape):
    model = tiny(shape)
    before = copy.deepcopy(model)
    tokens = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(1))
    assert weight_copies(before, tokens) > 0  # TransformerLens as it is: a copy per weight
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert forward_layout(model) > 0
    for k, v in model.state_dict().items():  # same shapes and values
        assert v.shape == params[k].shape and torch.equal(v, params[k]), k
    assert weight_copies(model, tokens) == 0
    a = model.blocks[1].attn
    q = einops.rearrange(a.W_Q, "head_index d_model d_head -> (head_index d_head) d_model")
    assert q.data_ptr() == a.W_Q.data_ptr() and q.is_contiguous()  # a view, not a copy
    assert model.unembed.W_U.is_contiguous()  # as the lens and attribution read it
    with torch.inference_mode():
        want_logits, want = before.run_with_cache(tokens)
        logits, got = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, want_logits, rtol=1e-6, atol=1e-6)
    assert set(got.cache_dict) == set(want.cache_dict)
    for k, v in want.cache_dict.items():
        if k == "unembed.hook_out":  # the logits: above
            continue
        assert torch.equal(got[k], v), k
    with torch.inference_mode():  # what analyses read: the same weights, products as before
        x = torch.randn(5, model.cfg.d_model, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(x @ model.W_U, x @ before.W_U, rtol=1e-6, atol=1e-6)
        assert torch.equal(model.W_Q, before.W_Q) and torch.equal(model.W_O, before.W_O)
    assert forward_layout(model) > 0 and weight_copies(model, tokens) == 0  # twice: no change


def test_split_qkv_models_keep_their_attention_weights():
    model = tiny("gpt2")
    model.set_use_split_qkv_input(True)
    ptr = model.blocks[0].attn.W_Q.data_ptr()
    forward_layout(model)
    assert model.blocks[0].attn.W_Q.data_ptr() == ptr and model.blocks[0].attn.W_Q.is_contiguous()


def test_the_engine_serves_models_laid_out(tmp_path):
    model = tiny("llama-gqa")
    before = copy.deepcopy(model)
    eng = Engine(EngineSettings(cache_dir=str(tmp_path)), load=False)
    try:
        eng.use(LoadedModel(model, "tiny", "local", "test-tiny", "cpu", "float32", 0.0))
        tokens = torch.randint(0, 97, (1, 9), generator=torch.Generator().manual_seed(3))
        assert weight_copies(eng.require_model().model, tokens) == 0
        with torch.inference_mode():
            torch.testing.assert_close(eng.require_model().model(tokens), before(tokens))
    finally:
        eng.close()
