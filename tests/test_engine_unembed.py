"""The engine's unembedding (engine/layout.py): one addmm on W_U itself, no copy of it per
call; TransformerLens's numbers and hook points."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

from engine import layout

PROMPT = "When Mary and John went to the store"


def test_the_loaded_model_is_laid_out(model):
    assert model.unembed.forward.__func__ is layout._unembed_forward
    assert model.unembed.W_U.is_contiguous()  # what the lens and attribution products read
    attn = model.blocks[0].attn
    w = einops.rearrange(attn.W_Q, "head_index d_model d_head -> (head_index d_head) d_model")
    assert w.data_ptr() == attn.W_Q.data_ptr()


def test_same_logits_as_transformer_lens(model):
    x = torch.randn(2, 5, model.cfg.d_model)
    with torch.no_grad():
        plain = F.linear(x, model.W_U.T.contiguous(), model.b_U)  # TransformerLens's product
        assert torch.equal(model.unembed(x), plain)
        copy = F.linear(
            x, model.W_U.detach().T.clone(memory_format=torch.contiguous_format), model.b_U
        )
        assert torch.allclose(model.unembed(x), copy, atol=1e-5)


def test_unembed_hook_points_fire(model):
    tokens = model.to_tokens(PROMPT)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n.startswith("unembed"))
        assert set(cache.keys()) == {"unembed.hook_in", "unembed.hook_out"}
        assert torch.equal(cache["unembed.hook_out"], logits)
        seen = []

        def bump(act, hook):
            seen.append(hook.name)
            return act + 1.0

        bumped = model.run_with_hooks(tokens, fwd_hooks=[("unembed.hook_out", bump)])
    assert seen == ["unembed.hook_out"]
    assert torch.allclose(bumped, logits + 1.0)


def test_a_prompt_run_does_not_keep_the_logits_twice(engine):
    ids, infos = engine.tokenize(PROMPT)
    run = engine.runs.get(engine.lm, ids, infos)
    kept = engine.compute(lambda: run.cache.cache_dict)
    assert "unembed.hook_in" in kept and "unembed.hook_out" not in kept
