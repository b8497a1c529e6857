"""The logit lens on a short prompt: the engine's cold answer against a bare ``run_with_cache``
and against the same lens written directly in TransformerLens, as a notebook would.

At 16 tokens the lens reads rows x positions streams through the unembedding (12 x 16 for
gpt2-small, 12x what the model's own forward unembeds): against the engine's own forward pass
(its weights laid out, engine/layout.py: no weight copied per call) it costs about as much
again; against a bare ``run_with_cache`` of the model as TransformerLens loads it (the bar),
and against the notebook's lens, it shows what the engine adds.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_lens_floor [--reps 5] [--n 16]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time

import torch

from bench.bench_real_size import GPT2, bare_ms, build, prompt_of
from components import windows
from engine.analyses.lens_topk import BLOCK, lens_topk
from engine.analyses.logit_lens import lens_hooks
from engine.schemas.analyses import LENS_MAX_K, AnalysisRequest
from engine.service import Engine
from engine.settings import EngineSettings


def notebook_lens_ms(model, ids: list[int], start: int, k: int = 5) -> float:
    """run_with_cache, then every layer's residual stream (ln_final applied), unembedded and
    top-k'd over the positions shown: the logit lens as TransformerLens writes it."""
    gc.collect()
    with torch.inference_mode():
        t0 = time.perf_counter()
        _, cache = model.run_with_cache(torch.tensor([ids]))
        resid = cache.accumulated_resid(apply_ln=True, pos_slice=slice(start, None))
        logits = model.unembed(resid[:, 0])  # [rows, pos, vocab]
        logits.log_softmax(-1).topk(k, dim=-1)
        return (time.perf_counter() - t0) * 1e3


def readout_ms(lm, ids: list[int], start: int, reps: int) -> dict[str, float]:
    """The lens's readout of the window alone, interleaved with a bare ``run_with_cache``:
    block by block (one ``lens_topk`` call per block of positions, as before), all blocks in
    one call (the engine now), and the floor of any exact lens: the unembedding product of
    every stream shown (``ln_final(x) @ W_U + b_U``), without its softmax or top-k."""
    model = lm.model
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        resid = torch.stack([cache[h][0, start:] for h in lens_hooks(lm.n_layers, "resid_post")])
        flat = resid.reshape(-1, resid.shape[-1])
        x = model.ln_final(flat)
    width = resid.shape[1]

    def per_block():
        for b in range(0, width, BLOCK):
            lens_topk(model, resid[:, b : b + BLOCK].reshape(-1, resid.shape[-1]), LENS_MAX_K)

    cases = {
        "bare run_with_cache": lambda: model.run_with_cache(torch.tensor([ids])),
        "readout block by block": per_block,
        "readout in one call": lambda: lens_topk(model, flat, LENS_MAX_K),
        "floor: ln_final(x) @ W_U + b_U": lambda: torch.addmm(model.b_U, x, model.W_U),
    }
    out: dict[str, list[float]] = {k: [] for k in cases}
    with torch.inference_mode():
        for f in cases.values():
            f()
        for _ in range(reps):
            for k, f in cases.items():
                gc.collect()
                t0 = time.perf_counter()
                f()
                out[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=16)
    args = ap.parse_args()
    lm = build("gpt2-small", GPT2)
    notebook = build("gpt2-small", GPT2)  # the same weights, as TransformerLens lays them out
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(EngineSettings(cache_dir=tmp), load=False)
        eng.use(lm)  # its weights laid out for the forward pass (engine/layout.py)
        prompt = prompt_of(eng, args.n)
        ids, _ = eng.tokenize(prompt)
        start = max(0, args.n - windows.LENS)
        params = {"stage": "resid_post", "top_k": 5, "start": start, "width": windows.LENS}
        bare_ms(lm, ids), bare_ms(notebook, ids), notebook_lens_ms(notebook.model, ids, start)
        bares, laid, notes, colds = [], [], [], []
        for _ in range(args.reps):  # interleaved: the machine's load hits all four
            bares.append(bare_ms(notebook, ids))
            laid.append(bare_ms(lm, ids))
            notes.append(notebook_lens_ms(notebook.model, ids, start))
            eng.runs.clear()
            eng.cache.clear()
            gc.collect()
            t0 = time.perf_counter()
            eng.analyze("logit_lens", AnalysisRequest(prompt=prompt, params=params))
            colds.append((time.perf_counter() - t0) * 1e3)
        eng.close()
    bare, lay, note, cold = (statistics.median(x) for x in (bares, laid, notes, colds))
    print(f"gpt2-small, {args.n} tokens, medians of {args.reps}: bare run_with_cache {bare:.0f} ms "
          f"(laid out: {lay:.0f} ms), notebook lens {note:.0f} ms, engine cold lens {cold:.0f} ms")  # fmt: skip
    print(f"engine / bare {cold / bare:.2f}x, engine / bare laid out {cold / lay:.2f}x, "
          f"notebook / bare {note / bare:.2f}x, engine / notebook {cold / note:.2f}x")  # fmt: skip
    parts = readout_ms(lm, ids, start, args.reps)
    base = parts["bare run_with_cache"]
    for name, t in parts.items():
        extra = "" if name.startswith("bare") else f"  (bare + it) / bare {(base + t) / base:.2f}x"
        print(f"{name:32s} {t:7.1f} ms{extra}")


if __name__ == "__main__":
    main()
