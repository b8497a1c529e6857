"""Figure export and tour warming: what a lecture or a report waits for.

    python -m bench.bench_export [--model DIR]

1. Export of one view figure (the DLA heads heatmap with its caption, paper style): PNG at
   3x and SVG, the old way (``fig.to_image``: kaleido starts Chromium on every click) against
   the kept-alive browser of ``components.export`` (first export pays the start), and the
   whole figure bundle (both images, data, CSVs, snippet, zip).
2. A tour step rendered cold (the page's engine requests computed) against warmed (answered
   from the engine's cache), each the full page script under Streamlit AppTest against a
   real engine process, for every step of the built-in tour.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from bench.common import model_dir
from components import bundles, export, snippets, tour, warm
from components.dla_figures import heads_figure
from engine.client import EngineClient
from engine.launcher import free_port, spawn_engine, wait_until_healthy
from engine.schemas.analyses import AnalysisRequest, DLAResult
from engine.service import Engine
from engine.settings import EngineSettings

PROMPT = "When Mary and John went to the store, John gave a drink to"


def seconds(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def bench_export(path: str, tmp: str) -> None:
    eng = Engine(EngineSettings(model=path, cache_dir=f"{tmp}/export"))
    res = DLAResult.model_validate_json(eng.analyze("dla", AnalysisRequest(prompt=PROMPT)))
    info = eng.model_info().model_dump()
    eng.close()
    caption = export.caption_text(info["name"], PROMPT, {"pos": res.pos})
    out = export.export_figure(heads_figure(res), caption)
    export._ensure_browser()
    old = {f: seconds(lambda f=f: out.to_image(format=f, scale=3), 3) for f in ("png", "svg")}
    t0 = time.perf_counter()
    export.figure_bytes(out, "png")
    first = time.perf_counter() - t0
    kept = {f: seconds(lambda f=f: export.figure_bytes(out, f), 10) for f in ("png", "svg")}
    spec = snippets.dla_heads(res)
    whole = seconds(
        lambda: bundles.figure_bundle(
            heads_figure(res), spec, name="dla_heads", caption=caption, params={},
            prompt=PROMPT, model_info=info,
        ),
        5,
    )  # fmt: skip
    export.RENDERER.close()
    print("| export | per click (old: Chromium per click) | kept browser | ratio |")
    print("|---|---|---|---|")
    for f in ("png", "svg"):
        print(f"| {f.upper()} | {old[f]:.2f} s | {kept[f]:.3f} s | {kept[f] / old[f]:.3f} |")
    print(f"\nfirst export (starts the browser): {first:.2f} s; whole bundle: {whole:.2f} s")


def bench_tour(path: str, tmp: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn_engine(port=port, model=path, cache_dir=f"{tmp}/tour")
    os.environ |= {"INTERPSCOPE_ENGINE_URL": url, "INTERPSCOPE_NO_SPAWN": "1"}
    try:
        client = EngineClient(url)
        wait_until_healthy(client, proc=proc)
        t = tour.load(tour.DEFAULT_TOUR)
        warm.run_step(t.steps[0].url)  # imports and first-run costs, not a step's
        client.clear_cache()
        print("\n| tour step | cold | warmed | ratio |\n|---|---|---|---|")
        for step in t.steps:
            t0 = time.perf_counter()
            warm.run_step(step.url)
            cold = time.perf_counter() - t0
            hot = seconds(lambda step=step: warm.run_step(step.url), 3)
            print(f"| {step.title} | {cold:.2f} s | {hot:.2f} s | {hot / cold:.2f} |")
    finally:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    args = parser.parse_args()
    path = model_dir(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        bench_export(path, tmp)
        bench_tour(path, tmp)


if __name__ == "__main__":
    main()
