"""View-sized answers at real prompt lengths, against TransformerLens computed directly.

A mid-size random GPT-2 (32 heads of width 2, a vocabulary larger than one lens chunk) and a
~1000-token prompt: the windowed attention and logit-lens answers decode to the numbers
TransformerLens gives, stay under 1 MB, and moving the window reuses the prompt's run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.analyses.lens_topk import VOCAB_CHUNK, lens_topk
from engine.analyses.registry import REGISTRY
from engine.run import PromptRun
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.arrays import pack, unpack
from engine.schemas.windows import clamp_window
from engine.service import Engine
from engine.settings import EngineSettings
from tests.helpers import make_tiny_gpt2

N_HEADS, VOCAB, N_CTX = 32, VOCAB_CHUNK + 3000, 1100
MB = 1 << 20


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    d = make_tiny_gpt2(
        tmp_path_factory.mktemp("wide"), n_layer=2, n_ctx=N_CTX, n_head=N_HEADS, n_embd=64,
        vocab_size=VOCAB, random_biases=True,
    )  # fmt: skip
    eng = Engine(EngineSettings(model=str(d), cache_dir=tmp_path_factory.mktemp("wide_cache")))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def long_prompt(wide):
    """A prompt of about 1000 tokens (with BOS)."""
    tok = wide.lm.model.tokenizer
    words = ("Mary gave the red kite to John near the old mill by the lake . " * 400).split()
    text = " ".join(words[:900])
    while len(tok(text)["input_ids"]) > 999:
        text = text.rsplit(" ", 10)[0]
    return text


def answer(eng: Engine, name: str, prompt: str, **params) -> tuple[dict, int]:
    raw = eng.analyze(name, AnalysisRequest(prompt=prompt, params=params))
    return json.loads(raw), len(raw)


def direct(eng: Engine, prompt: str):
    model = eng.lm.model
    with torch.inference_mode():
        _, cache = model.run_with_cache(model.to_tokens(prompt), remove_batch_dim=True)
    return cache


def pooled(pattern: np.ndarray, stride: int) -> np.ndarray:
    """Max over stride x stride blocks, the last ones cut short, in numpy."""
    n = pattern.shape[-1]
    m = -(-n // stride) * stride
    padded = np.full((m, m), -np.inf, dtype=np.float32)
    padded[:n, :n] = pattern
    return padded.reshape(m // stride, stride, m // stride, stride).max(axis=(1, 3))


def test_a_long_prompt_is_about_a_thousand_tokens(wide, long_prompt):
    n = len(wide.tokenize(long_prompt)[0])
    assert 950 <= n <= 1000


@pytest.mark.parametrize("start, width", [(0, 40), (517, 40), (990, 40), (300, 256)])
def test_attention_window_and_overview_equal_transformer_lens(wide, long_prompt, start, width):
    cache = direct(wide, long_prompt)
    layer, head = 1, 29
    pat = cache["pattern", layer][head]
    n = pat.shape[-1]
    res, size = answer(
        wide, "attention_pattern", long_prompt, layer=layer, head=head, start=start, width=width
    )
    s, e = clamp_window(start, width, n)
    assert (res["start"], res["stop"], res["n_tokens"]) == (s, e, n) and e - s == width
    got = unpack(res["pattern"])
    assert np.array_equal(got, pat[s:e, s:e].half().float().numpy())
    want_before = pat[s:e, :s].sum(-1).numpy()
    assert np.allclose(unpack(res["before"]), want_before, rtol=1e-3, atol=1e-3)
    stride = res["overview_stride"]
    assert stride == -(-n // 128)
    over = unpack(res["overview"])
    assert over.shape[0] <= 128
    assert np.array_equal(over, pooled(pat.numpy(), stride).astype(np.float16).astype(np.float32))
    assert size <= 0.25 * MB


def test_the_attention_views_overview_is_view_sized(wide, long_prompt):
    """The Attention view asks for `windows.OVERVIEW` cells a side: at ~1000 tokens, about 63
    cells of 16 positions, each the maximum of its block (the last block partial)."""
    from components import windows

    pat = direct(wide, long_prompt)["pattern", 1][29].numpy()
    n = pat.shape[-1]
    res, _ = answer(wide, "attention_pattern", long_prompt, layer=1, head=29, start=0, width=40,
                    overview=windows.OVERVIEW)  # fmt: skip
    stride, over = res["overview_stride"], unpack(res["overview"])
    assert stride == -(-n // windows.OVERVIEW) and over.shape[0] <= windows.OVERVIEW
    assert np.array_equal(over, pooled(pat, stride).astype(np.float16).astype(np.float32))
    assert over[10, 3] == pytest.approx(
        pat[10 * stride : 11 * stride, 3 * stride : 4 * stride].max(), abs=1e-3
    )
    m = over.shape[0] - 1  # the last block: rows and keys from m * stride to the end
    assert over[m, m] == pytest.approx(pat[m * stride :, m * stride :].max(), abs=1e-3)


def test_layer_window_of_every_head_equals_transformer_lens(wide, long_prompt):
    cache = direct(wide, long_prompt)
    res, size = answer(wide, "attention_layer", long_prompt, layer=0, start=700, width=64)
    got = unpack(res["patterns"])
    assert got.shape == (N_HEADS, 64, 64)
    assert np.array_equal(got, cache["pattern", 0][:, 700:764, 700:764].half().float().numpy())
    assert len(res["tokens"]) == 64 and size <= MB


@pytest.mark.parametrize("stage", ["resid_pre", "resid_mid", "resid_post"])
def test_lens_window_top_k_equals_full_vocab_top_k(wide, long_prompt, stage):
    """The chunked top-k over a vocabulary larger than one chunk equals the full readout."""
    model = wide.lm.model
    cache = direct(wide, long_prompt)
    s, e = 601, 625
    n_layers = model.cfg.n_layers
    resid = [cache[stage, la][s:e] for la in range(n_layers)]
    if stage != "resid_post":
        resid.append(cache["resid_post", n_layers - 1][s:e])
    with torch.inference_mode():
        lens = model.unembed(model.ln_final(torch.stack(resid)))  # [row, pos, vocab]
    assert lens.shape[-1] > VOCAB_CHUNK
    top_p, top_i = lens.softmax(-1).topk(10, dim=-1)
    res, size = answer(wide, "logit_lens", long_prompt, stage=stage, top_k=10, start=s, width=e - s)
    got_i = torch.tensor([[[c["id"] for c in cell] for cell in row] for row in res["top"]])
    got_p = torch.tensor([[[c["prob"] for c in cell] for cell in row] for row in res["top"]])
    got_l = torch.tensor([[[c["logit"] for c in cell] for cell in row] for row in res["top"]])
    assert torch.equal(got_i, top_i)
    assert torch.allclose(got_p, top_p, atol=1e-6, rtol=1e-4)
    assert torch.allclose(got_l, lens.gather(-1, top_i), atol=1e-4)
    assert [t["pos"] for t in res["tokens"]] == list(range(s, e))
    assert size <= MB


def test_lens_top_k_in_small_chunks_equals_one_readout(wide):
    model = wide.lm.model
    resid = torch.randn(7, model.cfg.d_model)
    with torch.inference_mode():
        full = model.unembed(model.ln_final(resid))
    for chunk in (7, 1000, VOCAB):
        ids, probs, logits = lens_topk(model, resid, 4, chunk=chunk)
        p, i = full.softmax(-1).topk(4, dim=-1)
        assert torch.equal(ids, i), chunk
        assert torch.allclose(probs, p, atol=1e-6, rtol=1e-4)
        assert torch.allclose(logits, full.gather(-1, i), atol=1e-5)


def test_no_view_answer_is_over_a_megabyte_at_a_thousand_tokens(wide, long_prompt):
    sizes = {
        "head_scores": answer(wide, "head_scores", long_prompt)[1],
        "attention_pattern": answer(
            wide, "attention_pattern", long_prompt, layer=0, head=0, width=256, overview=256
        )[1],
        "attention_layer": answer(wide, "attention_layer", long_prompt, layer=1, width=64)[1],
        "logit_lens": answer(wide, "logit_lens", long_prompt, top_k=10, width=64)[1],
        "predictions": answer(wide, "predictions", long_prompt, top_k=10)[1],
        "dla": answer(wide, "dla", long_prompt)[1],
    }
    assert max(sizes.values()) <= MB, sizes


def test_moving_the_window_reuses_the_run_and_equals_a_recompute(wide, long_prompt, monkeypatch):
    model = wide.lm.model
    forwards = []
    real = model.run_with_cache
    monkeypatch.setattr(
        model, "run_with_cache", lambda *a, **k: forwards.append(1) or real(*a, **k)
    )
    prompt = long_prompt + " again"  # a prompt no other test has run
    answers = [
        answer(wide, name, prompt, start=start, **params)[0]
        for start in (0, 410, 980, 405)
        for name, params in (
            ("logit_lens", {"width": 20}),
            ("attention_pattern", {"layer": 1, "head": 3}),
        )
    ]
    assert len(forwards) == 1  # one forward pass for every window
    ids, infos = wide.tokenize(prompt)
    fresh = PromptRun(wide.lm, ids, infos)  # a recompute from scratch, in another order
    for res, (name, params) in zip(
        answers[-2:],
        (("logit_lens", {"width": 20}), ("attention_pattern", {"layer": 1, "head": 3})),
        strict=True,
    ):
        analysis = REGISTRY[name]
        again = analysis.fn(fresh, analysis.params(start=405, **params))
        assert json.loads(again.model_dump_json()) == res, name


def test_packed_arrays_round_trip_as_float16():
    x = torch.rand(3, 5, 7)
    assert np.array_equal(unpack(pack(x)), x.half().float().numpy())
    assert np.array_equal(unpack(pack(x).model_dump()), unpack(pack(x.numpy())))
