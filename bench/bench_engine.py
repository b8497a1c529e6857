"""Engine overhead: an analysis through the engine's HTTP API vs the same call in-process.

    python -m bench.bench_engine

For a 32-token prompt on the embedded organism: the `predictions` analysis computed
in-process (tokenize + run_with_cache + top-k/loss), then the same request over HTTP to a
real engine process, cold (cache cleared) and cached. Prints medians and ratios.
"""

from __future__ import annotations

import tempfile

import torch

from bench.common import PROMPT_32, model_dir, timed
from engine.analyses.predictions import predictions
from engine.client import EngineClient
from engine.launcher import free_port, spawn_engine, wait_until_healthy
from engine.loading import load_model
from engine.run import PromptRun
from engine.schemas.analyses import PredictionsParams
from engine.service import Engine
from engine.settings import EngineSettings


def main() -> None:
    torch.set_num_threads(2)
    path = model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        # loaded and run on this thread only: the direct baseline has one OpenMP team, as the
        # engine process has on its model thread (engine/model_thread.py)
        eng = Engine(EngineSettings(model=path, cache_dir=f"{tmp}/inproc"), load=False)
        eng.use(load_model(path))
        ids, infos = eng.tokenize(PROMPT_32)
        assert len(ids) == 32, f"prompt is {len(ids)} tokens, want 32"
        lm, params = eng.require_model(), PredictionsParams(top_k=5)
        bare = timed(lambda: lm.model(torch.tensor([ids])))
        direct = timed(lambda: predictions(PromptRun(lm, ids, infos), params).model_dump_json())

        port = free_port()
        proc = spawn_engine(port=port, model=path, cache_dir=f"{tmp}/http")
        try:
            client = EngineClient(f"http://127.0.0.1:{port}")
            wait_until_healthy(client, proc=proc)

            def cold() -> None:
                client.clear_cache()
                client.analyze("predictions", PROMPT_32, top_k=5)

            clear_only = timed(client.clear_cache)
            cold_ms = timed(cold) - clear_only
            cached_ms = timed(lambda: client.analyze("predictions", PROMPT_32, top_k=5), repeat=100)
        finally:
            proc.kill()
    print(f"model: {path} (32-token prompt, predictions top-5, CPU, 2 threads)")
    print(f"bare TransformerLens forward            {bare:8.2f} ms")
    print(f"in-process analysis (forward+cache+top-k) {direct:6.2f} ms")
    print(
        f"engine over HTTP, cold                  {cold_ms:8.2f} ms   ratio {cold_ms / direct:.2f}x in-process"
    )
    print(
        f"engine over HTTP, cached                {cached_ms:8.2f} ms   ratio {cached_ms / direct:.2f}x in-process"
    )


if __name__ == "__main__":
    main()
