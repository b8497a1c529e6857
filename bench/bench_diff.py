"""A diff view of a new prompt vs one analysis of one model (issue 14), as a ratio in one run.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_diff [--only organism|gpt2] [--lengths 256]

Two pairs: the organism pair (``assets/organism`` in slot "a", ``assets/organism-chat`` in
"b"), and a gpt2-small-shape random pair (two ``HookedTransformer``s of GPT-2 small's config,
seeds 0 and 1, with the organism's tokenizer; as bench/bench_real_size.py builds real shapes).
For each prompt length, repeated and interleaved so that both see the machine's load, every
request cold (no run and no result of the prompt kept):

- one: ``predictions`` on A (one forward pass and its analysis), what the ratio is against;
- ``diff_tokens`` with ``model_b="b"`` (both forward passes, KL and top-k);
- ``diff_resid`` with ``model_b="b"`` (both forward passes, norms, lens of the difference).

The issue's bar: a diff view costs at most 2.2x one analysis of one model. Wall time is the
bar; the process's CPU time (all its threads) is printed beside it, the steadier number on a
shared machine (other processes' load stretches wall times unevenly).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import AutoTokenizer

from bench.bench_real_size import GPT2, prompt_of
from bench.common import ORGANISM
from engine.loading import LoadedModel
from engine.schemas.analyses import AnalysisRequest
from engine.service import Engine
from engine.settings import EngineSettings

CHAT = ORGANISM.parent / "organism-chat"
BAR = 2.2
WINDOW = {"start": 0, "width": 48}  # what a view asks for (moved to the prompt's end below)


def random_gpt2(seed: int) -> LoadedModel:
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(n_ctx=1024, device="cpu", seed=seed, **GPT2)
    model = HookedTransformer(cfg)
    model.eval()
    model.tokenizer = AutoTokenizer.from_pretrained(str(ORGANISM))
    return LoadedModel(model, f"gpt2-small-{seed}", "local", f"bench-gpt2-{seed}", "cpu", "float32", 0.0)  # fmt: skip


def cold_ms(eng: Engine, name: str, prompt: str, params: dict, **side) -> tuple[float, float]:
    """(wall ms, CPU ms of this process, every thread) of one cold request."""
    eng.runs.clear()
    eng.cache.clear()
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    eng.analyze(name, AnalysisRequest(prompt=prompt, params=params, **side))
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


FULL_B = "diff_tokens_full_b"  # diff_tokens as before side B's run went logits-only


def add_full_b(eng: Engine) -> None:
    """``diff_tokens`` with side B's run in full (activation cache and all), as it ran before
    ``light_b``: the same function and result, measured beside it for the difference."""
    eng.analyses[FULL_B] = replace(eng.analyses["diff_tokens"], name=FULL_B, light_b=False)


def measure(eng: Engine, label: str, n: int, reps: int) -> dict:
    prompt = prompt_of(eng, n)
    end = {"start": max(0, n - WINDOW["width"]), "width": WINDOW["width"]}
    asks = {
        "one (predictions on A)": ("predictions", {"top_k": 5, **end}, {}),
        "diff_tokens": ("diff_tokens", {"top_k": 5, **end}, {"model_b": "b"}),
        "diff_resid": ("diff_resid", {"top_k": 5, **end}, {"model_b": "b"}),
    }
    if FULL_B in eng.analyses:
        asks[FULL_B] = (FULL_B, {"top_k": 5, **end}, {"model_b": "b"})
    for name, params, side in asks.values():  # warm-up: every code path once
        cold_ms(eng, name, prompt, params, **side)
    walls: dict[str, list[float]] = {k: [] for k in asks}
    cpus: dict[str, list[float]] = {k: [] for k in asks}
    for _ in range(reps):
        for key, (name, params, side) in asks.items():
            wall, cpu = cold_ms(eng, name, prompt, params, **side)
            walls[key].append(wall)
            cpus[key].append(cpu)
    med = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    one, one_cpu = med["one (predictions on A)"], cpu["one (predictions on A)"]
    row = {
        "pair": label,
        "n": n,
        "reps": reps,
        **{f"{k} ms": round(v, 2) for k, v in med.items()},
        "diff_tokens / one": round(med["diff_tokens"] / one, 2),
        "diff_resid / one": round(med["diff_resid"] / one, 2),
        "cpu: diff_tokens / one": round(cpu["diff_tokens"] / one_cpu, 2),
        "cpu: diff_resid / one": round(cpu["diff_resid"] / one_cpu, 2),
    }
    if FULL_B in med:
        row["diff_tokens, B in full / one"] = round(med[FULL_B] / one, 2)
        row["cpu: diff_tokens, B in full / one"] = round(cpu[FULL_B] / one_cpu, 2)
    print(json.dumps(row), flush=True)
    return row


def organism_pair(tmp: str) -> Engine:
    eng = Engine(EngineSettings(model=str(ORGANISM), cache_dir=f"{tmp}/org"))
    eng.load(str(CHAT), slot="b")
    return eng


def gpt2_pair(tmp: str) -> Engine:
    eng = Engine(EngineSettings(cache_dir=f"{tmp}/gpt2"), load=False)
    eng.use(random_gpt2(0))
    eng.use(random_gpt2(1), slot="b")
    return eng


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["organism", "gpt2"])
    ap.add_argument("--lengths", default="256", help="gpt2 prompt lengths (organism: 32,120)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--full-b", action="store_true", help=f"also {FULL_B} (side B in full)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "organism"):
            eng = organism_pair(tmp)
            if args.full_b:
                add_full_b(eng)
            rows += [measure(eng, "organism / organism-chat", n, args.reps * 4) for n in (32, 120)]
            eng.close()
        if args.only in (None, "gpt2"):
            eng = gpt2_pair(tmp)
            if args.full_b:
                add_full_b(eng)
            for n in (int(x) for x in args.lengths.split(",")):
                rows += [measure(eng, "gpt2-small shape, random x2", n, args.reps)]
            eng.close()
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print("| pair | tokens | reps | one (predictions on A) ms | diff_tokens ms | diff_resid ms | "
          "diff_tokens / one | diff_resid / one | CPU time: diff_tokens / one | "
          "CPU time: diff_resid / one |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['pair']} | {r['n']} | {r['reps']} | {r['one (predictions on A) ms']:.1f} | "
            f"{r['diff_tokens ms']:.1f} | {r['diff_resid ms']:.1f} | "
            f"{r['diff_tokens / one']:.2f} | {r['diff_resid / one']:.2f} | "
            f"{r['cpu: diff_tokens / one']:.2f} | {r['cpu: diff_resid / one']:.2f} |"
        )
    for r in rows:
        if "diff_tokens, B in full / one" in r:
            print(f"{r['pair']}, {r['n']} tokens: diff_tokens with side B in full / one "
                  f"{r['diff_tokens, B in full / one']:.2f} (CPU time "
                  f"{r['cpu: diff_tokens, B in full / one']:.2f})")  # fmt: skip
    worst = max(max(r["diff_tokens / one"], r["diff_resid / one"]) for r in rows)
    print(f"worst ratio {worst:.2f} (bar {BAR}): {'OK' if worst <= BAR else 'OVER'}")


if __name__ == "__main__":
    main()
