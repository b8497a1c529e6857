"""A cold interactive analysis while a long job runs, as a ratio to the same on an idle engine.

    python -m bench.bench_busy [--model DIR] [--samples 10] [--threads 1]

An engine process on the organism (or DIR, a local model with ``transcoders/`` and an SAE);
the client sends `logit_lens` on a new prompt each time (a cache miss: one forward pass with
its activation cache), `--samples` times:

- idle: nothing else running;
- during an ``attribution_graph`` job (the 32-token prompt, every active latent, batch 64:
  tens of seconds of backward passes);
- during a ``latent_examples`` job (one SAE over 3,000 short texts, one forward per text).

Each busy sample starts a fresh job if the last one ended and waits 0.3 s into it, so every
sample lands inside a job. Also ``/health`` latency in the same three states. Prints medians,
maxima and the ratios busy/idle (the numbers for bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import PROMPT_32, model_dir
from engine.client import EngineClient, EngineUnavailable
from engine.launcher import free_port, spawn_engine, wait_until_healthy

GRAPH = {"prompt": PROMPT_32, "max_feature_nodes": 100_000, "max_n_logits": 1, "batch_size": 64}
SAE = "blocks.1.hook_resid_post"
WORDS = [
    "the",
    "dog",
    "ran",
    "to",
    "Mary",
    "and",
    "John",
    "in",
    "a",
    "park",
    "while",
    "the",
    "sun",
    "was",
    "high",
    "over",
    "Paris",
]


def texts_file(folder: Path, i: int, n: int = 3000) -> Path:
    path = folder / f"texts{i}.txt"  # a new file each time: results are kept per file
    lines = (" ".join(WORDS[(i + j) % len(WORDS)] for j in range(12 + i % 9)) for i in range(n))
    path.write_text("\n".join(lines))
    return path


class Probe:
    def __init__(self, client: EngineClient):
        self.client, self.n = client, 0

    def cold(self) -> float:
        """Seconds for one cold `logit_lens` (a prompt the engine has not seen)."""
        self.n += 1
        t0 = time.perf_counter()
        try:
            self.client.analyze("logit_lens", f"{PROMPT_32} {self.n} times")
        except EngineUnavailable:
            return float("inf")  # timed out (an engine that does not say it is busy)
        return time.perf_counter() - t0

    def health(self) -> float:
        t0 = time.perf_counter()
        self.client.health(timeout=60)
        return time.perf_counter() - t0


def during(client: EngineClient, kind: str, params, probe, samples: int) -> list[float]:
    """`probe()` timings, each inside a running job (`params(i)`: the i-th job's, all new)."""
    out, job, n = [], None, 0
    for _ in range(samples):
        if job is None or client.job(job)["job"]["status"] != "running":
            if job is not None:
                client.cancel_job(job)
            n += 1
            job = client.start_job(kind, params(n))["id"]
            while client.job(job)["job"]["status"] == "queued":
                time.sleep(0.05)
        time.sleep(0.3)
        out.append(probe())
    client.cancel_job(job)
    while client.job(job)["job"]["status"] not in ("done", "failed", "cancelled"):
        time.sleep(0.1)
    return out


def summary(name: str, xs: list[float], idle: float) -> str:
    med = statistics.median(xs)
    return (f"{name:<22} median {med * 1e3:8.1f} ms  max {max(xs) * 1e3:8.1f} ms  "
            f"ratio {med / idle:6.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    proc = spawn_engine(port=port, model=model_dir(args.model), cache_dir=str(tmp / "cache"),
                        log_path=tmp / "engine.log")  # fmt: skip
    try:
        client = EngineClient(f"http://127.0.0.1:{port}")
        wait_until_healthy(client, proc=proc, timeout=180)
        p = Probe(client)
        for _ in range(3):
            p.cold()  # warm-up: model thread, allocator

        def examples(i: int) -> dict:
            return {"sae": SAE, "path": str(texts_file(tmp, i)), "max_texts": 3000}

        def graph_params(i: int) -> dict:
            return {**GRAPH, "prompt": f"{PROMPT_32} {i}"}  # a new graph each time

        rows = {}
        for name, probe in (("cold logit_lens", p.cold), ("/health", p.health)):
            idle = [probe() for _ in range(args.samples)]
            graph = during(client, "attribution_graph", graph_params, probe, args.samples)
            ex = during(client, "latent_examples", examples, probe, args.samples)
            rows[name] = (idle, graph, ex)
        for name, (idle, graph, ex) in rows.items():
            base = statistics.median(idle)
            print(summary(f"{name}, idle", idle, base))
            print(summary(f"{name}, graph job", graph, base))
            print(summary(f"{name}, examples job", ex, base))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
