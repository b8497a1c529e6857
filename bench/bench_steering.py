"""Steered generation speed: tokens/s vs TransformerLens ``generate`` with KV cache, and time
from a slider change to the first streamed token.

    python -m bench.bench_steering [--model DIR] [--tokens 64]

1. Unsteered ``HookedTransformer.generate`` (KV cache, sampling, no EOS stop) against
   ``engine.steering.generate_pair`` with one SAE latent vector (its own KV cache), same
   prompt and length, the baseline continuation kept from the first call as when a slider
   moves; then the same through a real engine process's HTTP stream (one CPU thread on both
   sides). Ratio = steered tokens/s over TransformerLens's, timings interleaved.
2. Slider change -> first token: a running engine process is asked again with a new
   coefficient (what the page does when a slider moves); the time until the first ``token``
   line of the NDJSON stream arrives, median over coefficient changes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from bench.common import PROMPT_32, model_dir, timed
from engine import saes, steering
from engine.client import EngineClient
from engine.launcher import free_port, spawn_engine, wait_until_healthy
from engine.schemas.steering import SteeringVector, SteerRequest
from engine.service import Engine
from engine.settings import EngineSettings


def vector(eng: Engine, coef: float) -> dict:
    reg = saes.for_model(eng.require_model())
    sae = reg.infos()[0].id if len(reg) else None
    if sae is None:
        raise SystemExit("bench_steering needs a model with an SAE attached (the organism has two)")
    return SteeringVector(kind="sae_latent", sae=sae, index=0, coefficient=coef).model_dump()


def tl_generate(eng: Engine, n: int):
    lm = eng.require_model()
    ids, _ = eng.tokenize(PROMPT_32)

    def tl() -> None:
        lm.model.generate(torch.tensor([ids], device=lm.device), max_new_tokens=n,
                          stop_at_eos=False, verbose=False, use_past_kv_cache=True)  # fmt: skip

    return tl


def in_process(eng: Engine, n: int) -> tuple[float, float]:
    lm = eng.require_model()
    ids, _ = eng.tokenize(PROMPT_32)
    tl = tl_generate(eng, n)

    req = SteerRequest(prompt=PROMPT_32, vectors=[vector(eng, 4.0)], max_new_tokens=n,
                       temperature=1.0, stop_at_eos=False)  # fmt: skip
    resolved = steering.resolve(lm, req.vectors)

    def ours() -> None:
        steps = list(steering.generate_pair(lm, ids, resolved, req))
        assert len(steps) == n

    tl(), ours()  # warm-up
    pairs = []
    for _ in range(9):  # interleaved, so load on a shared machine hits both alike
        pairs.append((timed(tl, repeat=1, warmup=0), timed(ours, repeat=1, warmup=0)))
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def over_http(client: EngineClient, body: dict, n: int) -> tuple[float, float]:
    """(ms for the whole stream, ms to the first token event)."""
    t0 = time.perf_counter()
    first = None
    count = 0
    for e in client.steer_stream(body):
        if e.type == "token":
            count += 1
            first = first if first is not None else time.perf_counter() - t0
    assert count == n, count
    return (time.perf_counter() - t0) * 1e3, first * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # the engine process too
    path, n = model_dir(args.model), args.tokens
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(EngineSettings(model=path, cache_dir=f"{tmp}/inproc"))
        tl_ms, ours_ms = in_process(eng, n)
        body = {"prompt": PROMPT_32, "vectors": [vector(eng, 4.0)], "max_new_tokens": n,
                "temperature": 1.0, "stop_at_eos": False}  # fmt: skip
        port = free_port()
        proc = spawn_engine(port=port, model=path, cache_dir=f"{tmp}/http")
        try:
            client = EngineClient(f"http://127.0.0.1:{port}")
            wait_until_healthy(client, proc=proc)
            over_http(client, body, n)  # warm-up
            runs, tl_runs, tl = [], [], tl_generate(eng, n)
            for i in range(7):  # a slider moves: the same setup with a new coefficient
                body["vectors"][0]["coefficient"] = 1.0 + i
                tl_runs.append(timed(tl, repeat=1, warmup=0))
                runs.append(over_http(client, body, n))
            http_ms = statistics.median(r[0] for r in runs)
            first_ms = statistics.median(r[1] for r in runs)
            tl_http_ms = statistics.median(tl_runs)
        finally:
            proc.kill()
            eng.close()
    device = "cuda" if torch.cuda.is_available() else "CPU, 1 thread"
    print(f"model: {path} · 32-token prompt · {n} new tokens · sampling · {device}")
    print(f"TransformerLens generate (KV cache, unsteered)  {n / tl_ms * 1e3:8.1f} tokens/s")
    print(f"steered + baseline pair, in-process             {n / ours_ms * 1e3:8.1f} tokens/s"
          f"   ratio {tl_ms / ours_ms:.2f}")  # fmt: skip
    print(f"steered + baseline pair, engine HTTP stream     {n / http_ms * 1e3:8.1f} tokens/s"
          f"   ratio {tl_http_ms / http_ms:.2f}")  # fmt: skip
    print(f"slider change -> first streamed token           {first_ms:8.1f} ms (median of 7)")


if __name__ == "__main__":
    main()
