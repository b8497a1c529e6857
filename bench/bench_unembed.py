"""Does engine/fast_unembed.py still pay? Plain TransformerLens ``Unembed.forward`` (an
``F.linear`` on a contiguous copy of ``W_U.T``, every call) against the engine's (one
``addmm`` on ``W_U`` itself, hook points kept).

    python -m bench.bench_unembed

On a gpt2-small-shaped model (random weights, d_model 768, vocab 50257, float32, CPU): the
unembedding alone on one position (a generation step) and on 256 positions, and one
generation step of the whole model (one token on a KV cache), which is what steering and
generation repeat. Prints the medians and the ratio fast / plain (< 1: the speed-up pays).
"""

from __future__ import annotations

import torch
from transformer_lens import (
    HookedTransformer,
    HookedTransformerConfig,
    TransformerLensKeyValueCache,
)
from transformer_lens.components import Unembed

from bench.common import timed
from engine.fast_unembed import speed_up


def gpt2_small_shape() -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, n_ctx=1024,
        d_vocab=50257, act_fn="gelu_new", normalization_type="LN", seed=0,
    )  # fmt: skip
    return HookedTransformer(cfg).eval()


def unembed_ms(module: torch.nn.Module, n: int) -> float:
    x = torch.randn(1, n, 768)
    return timed(lambda: module(x))


def step_ms(model: HookedTransformer) -> float:
    """One generation step: one token on the KV cache of a 32-token prompt."""
    prompt = torch.randint(
        0, model.cfg.d_vocab, (1, 32), generator=torch.Generator().manual_seed(0)
    )
    kv = TransformerLensKeyValueCache.init_cache(model.cfg, "cpu", 1)
    model(prompt, past_kv_cache=kv, attention_mask=torch.ones_like(prompt))
    token = prompt[:, -1:]

    def step() -> None:
        kv.freeze()  # every repeat on the same prefix: the cache does not grow
        model(token, past_kv_cache=kv, attention_mask=torch.ones_like(token))
        kv.unfreeze()

    return timed(step, repeat=10)


def main() -> None:
    torch.manual_seed(0)
    model = gpt2_small_shape()
    plain = model.unembed
    fast = Unembed(model.cfg)
    fast.load_state_dict(plain.state_dict())
    speed_up(fast)
    rows = []
    with torch.inference_mode():
        x = torch.randn(1, 7, model.cfg.d_model)
        assert torch.allclose(plain(x), fast(x), atol=1e-4)
        for n in (1, 256):
            rows.append(
                (f"unembed alone, {n} position(s)", unembed_ms(plain, n), unembed_ms(fast, n))
            )
        t_plain = step_ms(model)
        model.unembed = fast
        t_fast = step_ms(model)
    rows.append(("generation step (whole model, 1 token on a KV cache)", t_plain, t_fast))
    print("| what | plain TL (ms) | engine's (ms) | ratio engine / plain |")
    print("|---|---|---|---|")
    for label, a, b in rows:
        print(f"| {label} | {a:.2f} | {b:.2f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
