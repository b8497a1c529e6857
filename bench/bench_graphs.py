"""Attribution graph time through the engine job, as a ratio to circuit-tracer called directly.

    python -m bench.bench_graphs [--model DIR] [--repeat 7] [--threads 1] [--nodes 256]

On the embedded organism (or DIR, a local model with ``transcoders/``), a 16-token prompt
(BOS + 15), the job's default parameters (256 latent nodes, 5 logits, batch 64):

- direct: ``attribute`` on a replacement model built once, in this process; and
  ``attribute`` + ``create_graph_files`` (the same product the job saves);
- the job's work (``GraphService.attribute``) called directly, the job on an ``Engine`` in
  this process, and the job over HTTP
  (``POST /jobs/attribution_graph`` to a real engine process, then one
  ``GET /jobs/{id}/wait`` that answers when it is done); the saved
  graph is deleted after each run so every run recomputes (the job also prices the request,
  writes ``<slug>.pt`` and labels the latents).

Each round runs every variant once (interleaved, so load changes hit them alike); medians
and minima of `--repeat` rounds after one warm-up round. One torch thread (``--threads``):
on a loaded 2-core machine two OpenMP threads make a main-thread ``attribute`` up to 10x
slower than the same call in a worker thread, which would flatter the job.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.common import PROMPT_32, model_dir
from engine.client import EngineClient
from engine.graphs.replacement import build_replacement_model, load_transcoder_set
from engine.graphs.schemas import GraphParams
from engine.graphs.service import graph_service
from engine.jobs import Job, JobContext
from engine.launcher import free_port, spawn_engine, wait_until_healthy
from engine.loading import load_model
from engine.service import Engine
from engine.settings import EngineSettings

PARAMS = {"max_feature_nodes": 256, "max_n_logits": 5, "batch_size": 64}


def interleaved(fns: dict, repeat: int) -> dict[str, list[float]]:
    """Each function once per round (after one warm-up round), so load changes hit all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def prompt_16(tok) -> str:
    ids = tok.encode(PROMPT_32)[:15]
    return tok.decode(ids)


def direct_fns(path: str, prompt: str, out: Path) -> tuple[dict, int]:
    from circuit_tracer import attribute
    from circuit_tracer.utils.create_graph_files import create_graph_files

    lm = load_model(path)
    rm = build_replacement_model(lm.model, load_transcoder_set(Path(path) / "transcoders"))
    tok = lm.model.tokenizer
    ids = torch.tensor([tok.bos_token_id, *tok.encode(prompt)])

    def attr():
        return attribute(ids, rm, **PARAMS)

    def both():
        create_graph_files(attr(), "bench", str(out), node_threshold=0.8, edge_threshold=0.98)

    return {"attribute": attr, "attribute + create_graph_files": both}, len(ids)


def inproc_fns(path: str, prompt: str, cache_dir: str) -> dict:
    """The job's work called in this thread, and the job on the engine's worker thread
    (polled every 20 ms), on an ``Engine`` in this process: no HTTP, no second process."""
    eng = Engine(EngineSettings(model=path, cache_dir=cache_dir))
    svc = graph_service(eng)

    def work():
        info = svc.attribute(JobContext(Job("bench", "attribution_graph", fn=None)),
                             GraphParams(prompt=prompt, **PARAMS))  # fmt: skip
        svc.store.delete(info["slug"])

    def job():
        j = eng.start_job("attribution_graph", {"prompt": prompt, **PARAMS})
        while not j.status.finished:
            time.sleep(0.02)
        assert j.status == "done", j.error
        svc.store.delete(j.result["slug"])

    return {"job's work, called directly": work, "engine job in-process": job}


def job_fn(client: EngineClient, prompt: str):
    def run():
        job = client.start_job("attribution_graph", {"prompt": prompt, **PARAMS})
        state = client.wait_job_done(job["id"])
        assert state["job"]["status"] == "done", state["job"]
        client.delete_graph(state["result"]["slug"])

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=256, help="latent node budget")
    args = ap.parse_args()
    path = model_dir(args.model)
    PARAMS["max_feature_nodes"] = args.nodes
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the engine process inherits it
    with tempfile.TemporaryDirectory() as tmp:
        prompt = prompt_16(load_model(path).model.tokenizer)
        fns, n = direct_fns(path, prompt, Path(tmp) / "direct")
        port = free_port()
        proc = spawn_engine(port=port, model=path, cache_dir=f"{tmp}/http")
        client = EngineClient(f"http://127.0.0.1:{port}", timeout=600)
        try:
            wait_until_healthy(client, proc=proc)
            fns |= inproc_fns(path, prompt, f"{tmp}/inproc")
            fns["engine job over HTTP"] = job_fn(client, prompt)
            times = interleaved(fns, args.repeat)
        finally:
            proc.kill()
    print(f"prompt: {n} tokens ({prompt!r}), params {PARAMS}, {args.repeat} rounds")  # noqa: T201
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    for name in times:
        print(f"{name:32s} median {med[name]:7.3f} s   min {best[name]:7.3f} s")  # noqa: T201
    for job in ("job's work, called directly", "engine job in-process", "engine job over HTTP"):
        for base in ("attribute", "attribute + create_graph_files"):
            print(f"{job} / {base}: median {med[job] / med[base]:.3f}, "  # noqa: T201
                  f"min {best[job] / best[base]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
