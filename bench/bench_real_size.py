"""Views at real size: random-weight models of real shapes, prompts of 16 / 256 / 1000 tokens.

For each shape the bench builds a ``HookedTransformer`` from a ``HookedTransformerConfig``
(random weights; no download), gives it the organism's tokenizer (prompts only use its ids),
and serves it from an in-process ``Engine``. Per analysis, as the views call it:

- cold: the engine's answer with no run or result of this prompt kept (one forward pass plus
  the analysis), as a ratio to a bare ``run_with_cache`` of the same tokens in the same run;
- cached: the same request again (the result cache), in ms, engine-side;
- moved: the position window moved (same prompt: the run is kept, the result is new), in ms;
- bytes: the answer's size.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_real_size [--llama-layers 4] [--only gpt2]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import tempfile
import time

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import AutoTokenizer

from bench.common import ORGANISM, timed
from components import windows
from engine.loading import LoadedModel
from engine.schemas.analyses import AnalysisRequest
from engine.service import Engine
from engine.settings import EngineSettings
from organism.corpus import sample_texts

LENGTHS = (16, 256, 1000)
GPT2 = dict(
    n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
    act_fn="gelu_new", normalization_type="LN", original_architecture="GPT2LMHeadModel",
)  # fmt: skip
LLAMA_1B = dict(
    n_layers=16, d_model=2048, n_heads=32, d_head=64, n_key_value_heads=8, d_mlp=8192,
    d_vocab=128256, act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary",
    rotary_dim=64, rotary_adjacent_pairs=False, rotary_base=500000.0, final_rms=True,
    gated_mlp=True, eps=1e-5, original_architecture="LlamaForCausalLM",
)  # fmt: skip
GEMMA2 = dict(
    n_layers=2, d_model=2304, n_heads=8, d_head=256, n_key_value_heads=4, d_mlp=9216,
    d_vocab=256000, act_fn="gelu_pytorch_tanh", normalization_type="RMS", eps=1e-6,
    positional_embedding_type="rotary", rotary_base=10000.0, use_attn_scale=True,
    window_size=4096, use_local_attn=True, attn_types=["global", "local"],
    attn_scores_soft_cap=50.0, output_logits_soft_cap=30.0, gated_mlp=True, final_rms=True,
    use_normalization_before_and_after=True, original_architecture="Gemma2ForCausalLM",
)  # fmt: skip


def build(name: str, shape: dict) -> LoadedModel:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_ctx=1024, device="cpu", seed=0, **shape)
    model = HookedTransformer(cfg)
    model.eval()
    model.tokenizer = AutoTokenizer.from_pretrained(str(ORGANISM))
    return LoadedModel(model, name, "local", f"bench-{name}", "cpu", "float32", 0.0)


def prompt_of(eng: Engine, n: int) -> str:
    """A prompt of exactly `n` tokens (BOS included) for the organism's tokenizer."""
    text = " ".join(sample_texts(1000, seed=1))[:20_000]
    enc = eng.lm.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    prompt = text[: enc["offset_mapping"][n - 2][1]]  # n - 1 tokens, and BOS
    assert len(eng.tokenize(prompt)[0]) == n
    return prompt


def requests(lm: LoadedModel, n: int) -> dict[str, tuple[dict, dict | None]]:
    """Each analysis as its view asks for it at the end of the prompt, and (for a windowed one)
    the request after the window moved back by 10 positions."""
    L, H = lm.n_layers - 1, lm.n_heads - 1
    a, c, w = windows.ATTENTION, windows.CIRCUITSVIS, windows.LENS

    def moved(p: dict) -> dict | None:
        return {**p, "start": max(0, p["start"] - 10)} if n > p["width"] else None

    att = {"layer": L, "head": H, "start": max(0, n - a), "width": a, "overview": windows.OVERVIEW}
    lay = {"layer": L, "start": max(0, n - c), "width": c}
    lens = {"stage": "resid_post", "top_k": 5, "start": max(0, n - w), "width": w}
    return {
        "predictions": ({"top_k": 5}, None),
        "head_scores": ({}, None),
        "attention_pattern": (att, moved(att)),
        "attention_layer": (lay, moved(lay)),
        "logit_lens": (lens, moved(lens)),
        "logit_lens_targets": ({"stage": "resid_post"}, None),
        "dla": ({}, None),
    }


def bare_ms(lm: LoadedModel, ids: list[int]) -> float:
    """One bare ``run_with_cache`` of `ids`, as a notebook would run it."""
    gc.collect()
    with torch.inference_mode():
        t0 = time.perf_counter()
        lm.model.run_with_cache(torch.tensor([ids]))
        return (time.perf_counter() - t0) * 1e3


def user_ms() -> float:
    """User CPU time of this process, every thread (the engine's model thread included), ms:
    the computation without the kernel's page faults, which on this VM swing from 1 to 20 s
    for the same 1000-token forward pass (fresh pages of a freed cache, bench/RESULTS.md)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime * 1e3


def measure(
    eng: Engine,
    prompt: str,
    name: str,
    params: dict,
    moved: dict | None,
    reps: int,
    notebook: LoadedModel,
) -> dict:
    """Cold answers interleaved with bare runs (the machine is shared: both see its load): of
    the model as TransformerLens loads it (`notebook`: what the bar compares with) and of the
    engine's own model, its weights laid out for the forward pass (engine/layout.py)."""

    def ask(p: dict) -> bytes:
        return eng.analyze(name, AnalysisRequest(prompt=prompt, params=p))

    ids, _ = eng.tokenize(prompt)
    colds, bares, laid, cold_cpu, bare_cpu = [], [], [], [], []
    for _ in range(reps):
        u0 = user_ms()
        bares.append(bare_ms(notebook, ids))
        bare_cpu.append(user_ms() - u0)
        laid.append(bare_ms(eng.lm, ids))
        eng.runs.clear()
        eng.cache.clear()
        gc.collect()
        t0, u0 = time.perf_counter(), user_ms()
        data = ask(params)
        colds.append((time.perf_counter() - t0) * 1e3)
        cold_cpu.append(user_ms() - u0)
    cold, bare, bare_laid = (statistics.median(x) for x in (colds, bares, laid))
    cpu_ratio = statistics.median(cold_cpu) / statistics.median(bare_cpu)
    cached = timed(lambda: ask(params), repeat=5, warmup=1)
    moved_ms = None
    if moved is not None:
        t0 = time.perf_counter()
        ask(moved)
        moved_ms = (time.perf_counter() - t0) * 1e3
    return {
        "bare_ms": bare, "bare_laid_ms": bare_laid, "cold_ms": cold, "ratio": cold / bare,
        "ratio_laid": cold / bare_laid, "ratio_user_cpu": cpu_ratio, "cached_ms": cached,
        "moved_ms": moved_ms, "bytes": len(data),
    }  # fmt: skip


def old_lens_ms(lm: LoadedModel, ids: list[int]) -> float:
    """The previous logit lens's own work: every row x every position x the whole vocab."""
    model = lm.model
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        t0 = time.perf_counter()
        for layer in range(model.cfg.n_layers):
            row = model.unembed(model.ln_final(cache["resid_post", layer]))[0].float()
            p, i = row.softmax(-1).topk(5, dim=-1)
            row.gather(-1, i)
        return (time.perf_counter() - t0) * 1e3


def old_layer_bytes(lm: LoadedModel, ids: list[int]) -> int:
    """The previous ``attention_layer`` answer's size: every head's full pattern as JSON."""
    with torch.inference_mode():
        _, cache = lm.model.run_with_cache(
            torch.tensor([ids]), names_filter=lambda n: "pattern" in n
        )
    return len(json.dumps(cache["pattern", lm.n_layers - 1][0].tolist()))


def bench_model(
    name: str,
    shape: dict,
    lengths: tuple[int, ...],
    before: bool,
    reps_short: int = 2,
    reps_long: int = 1,
) -> list[dict]:
    lm = build(name, shape)
    notebook = build(name, shape)  # the same weights, as TransformerLens lays them out
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(EngineSettings(cache_dir=tmp), load=False)
        eng.use(lm)
        for n in lengths:
            prompt = prompt_of(eng, n)
            ids, _ = eng.tokenize(prompt)
            reps = reps_short if n <= 256 else reps_long
            bare_ms(lm, ids), bare_ms(notebook, ids)  # warm-up
            extra = {}
            if before:
                bare = statistics.median(bare_ms(notebook, ids) for _ in range(reps))
                extra["old_lens_ratio"] = (bare + old_lens_ms(notebook, ids)) / bare
                extra["old_layer_bytes"] = old_layer_bytes(notebook, ids)
            for analysis, (params, moved) in requests(lm, n).items():
                m = measure(eng, prompt, analysis, params, moved, reps, notebook)
                row = {"model": name, "n": n, "analysis": analysis, **m}
                rows.append(row)
                print(json.dumps(row | ({} if analysis != "logit_lens" else extra)), flush=True)
            eng.runs.clear()
        eng.close()
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| model | tokens | analysis | bare run_with_cache ms | the same, laid out ms | cold ms "
        "| cold / bare | cold / laid out | user CPU: cold / bare | cached ms | window moved ms "
        "| bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        moved = "" if r["moved_ms"] is None else f"{r['moved_ms']:.1f}"
        out.append(
            f"| {r['model']} | {r['n']} | {r['analysis']} | {r['bare_ms']:.0f} | "
            f"{r['bare_laid_ms']:.0f} | {r['cold_ms']:.0f} | {r['ratio']:.2f} | "
            f"{r['ratio_laid']:.2f} | {r['ratio_user_cpu']:.2f} | {r['cached_ms']:.2f} | {moved} | "
            f"{r['bytes']:,} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-layers", type=int, default=4, help="layers of the Llama-1B shape")
    ap.add_argument("--only", help="gpt2, llama or gemma")
    ap.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    ap.add_argument("--before", action="store_true", help="also the old lens / layer answer")
    ap.add_argument("--reps", type=int, default=2, help="cold samples at 16 and 256 tokens")
    ap.add_argument("--reps-long", type=int, default=1, help="cold samples at 1000 tokens")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lengths = tuple(int(x) for x in args.lengths.split(","))
    shapes = {
        "gpt2": ("gpt2-small", GPT2),
        "llama": (f"llama-3.2-1b ({args.llama_layers} of 16 layers)",
                  {**LLAMA_1B, "n_layers": args.llama_layers}),
        "gemma": ("gemma-2 (2 layers, 256k vocab)", GEMMA2),
    }  # fmt: skip
    rows = []
    for key, (name, shape) in shapes.items():
        if args.only and key != args.only:
            continue
        rows += bench_model(
            name, shape, lengths, args.before and key == "gpt2", args.reps, args.reps_long
        )
    print(table(rows))
    worst = max(r["bytes"] for r in rows)
    print(f"largest answer: {worst:,} bytes; slowest cached: "
          f"{max(r['cached_ms'] for r in rows):.1f} ms; median cold/bare: "
          f"{statistics.median(r['ratio'] for r in rows):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
