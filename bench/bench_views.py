"""Time to first render of the Attention, Logit lens and DLA views, cold and cached.

    python -m bench.bench_views [--model DIR]

For a 32-token prompt on the embedded organism (or DIR): every engine call each page makes,
over HTTP to a real engine process, plus building and serializing its figures, as the three
pages run one after the other. Cold = result cache and runs cleared first (the first view
pays the one forward pass, the others reuse it); cached = the same again. Both are printed as
a ratio to one bare in-process ``run_with_cache`` of the same prompt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from bench.common import PROMPT_32, model_dir, timed
from components import windows
from components.attention_figures import head_scores_figure, pattern_block, patterns_figure
from components.attention_vis import attention_heads_html
from components.dla_figures import heads_figure, terms_figure
from components.lens_figures import lens_figure, traces_figure
from engine.client import EngineClient
from engine.launcher import free_port, spawn_engine, wait_until_healthy
from engine.schemas.arrays import unpack
from engine.service import Engine
from engine.settings import EngineSettings

BUNDLE_URL = "/app/static/vendor/circuitsvis.js"


def attention(c: EngineClient, prompt: str) -> None:
    scores = c.analyze("head_scores", prompt)
    pattern = c.analyze("attention_pattern", prompt, layer=0, head=0, width=windows.ATTENTION)
    layer = c.analyze("attention_layer", prompt, layer=0, width=windows.CIRCUITSVIS)
    head_scores_figure(scores, "prev_token", selected=(0, 0)).to_json()
    patterns_figure(pattern.tokens, [pattern_block(pattern)], selected_pos=31).to_json()
    cv = unpack(layer.patterns)
    attention_heads_html(layer.tokens, cv, ["h"] * len(cv), bundle_url=BUNDLE_URL)


def logit_lens(c: EngineClient, prompt: str) -> None:
    grid = c.analyze("logit_lens", prompt, stage="resid_post", top_k=5, width=windows.LENS)
    traces = c.analyze("logit_lens_targets", prompt, stage="resid_post", pos=31)
    lens_figure(grid, selected_pos=31, selected_layer=0).to_json()
    traces_figure(traces).to_json()


def dla(c: EngineClient, prompt: str) -> None:
    c.analyze("predictions", prompt, top_k=8)
    res = c.analyze("dla", prompt, pos=31)
    heads_figure(res, selected=(0, 0)).to_json()
    terms_figure(res, selected_layer=0).to_json()


VIEWS = {"attention": attention, "logit lens": logit_lens, "dla": dla}


def all_views(c: EngineClient, prompt: str, split: dict[str, list[float]] | None = None) -> None:
    for name, view in VIEWS.items():
        t0 = time.perf_counter()
        view(c, prompt)
        if split is not None:
            split.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)


def cold(client: EngineClient, prompt: str, split: dict[str, list[float]]) -> float:
    """All three views right after the engine dropped its results and runs (not timed)."""
    client.clear_cache()
    t0 = time.perf_counter()
    all_views(client, prompt, split)
    return (time.perf_counter() - t0) * 1e3


def first_32_tokens(eng: Engine) -> str:
    """The standard prompt, cut to 32 tokens (BOS included) for this model's tokenizer."""
    ids, infos = eng.tokenize(PROMPT_32)
    assert len(ids) >= 32, f"the prompt is only {len(ids)} tokens for this model"
    prompt = PROMPT_32[: infos[31].end]
    assert len(eng.tokenize(prompt)[0]) == 32
    return prompt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a local Hugging Face model directory (default: organism)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, here and in the engine")
    args = ap.parse_args()
    path = model_dir(args.model)
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the engine process inherits it
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(EngineSettings(model=path, cache_dir=f"{tmp}/inproc"))
        prompt = first_32_tokens(eng)
        ids, _ = eng.tokenize(prompt)
        model, tokens = eng.require_model().model, torch.tensor([ids])
        with torch.inference_mode():
            bare = timed(lambda: model.run_with_cache(tokens))
        eng.close()
        port = free_port()
        proc = spawn_engine(port=port, model=path, cache_dir=f"{tmp}/http")
        try:
            client = EngineClient(f"http://127.0.0.1:{port}")
            wait_until_healthy(client, proc=proc)
            split: dict[str, list[float]] = {}
            cold_ms = statistics.median(cold(client, prompt, split) for _ in range(12))
            cached_ms = timed(lambda: all_views(client, prompt), repeat=20)
        finally:
            proc.kill()
    report(
        f"{path} (32-token prompt, CPU, {args.threads} threads)", bare, cold_ms, cached_ms, split
    )


def report(what: str, bare: float, cold: float, cached: float, split: dict) -> None:
    print(f"model: {what}")
    print(f"bare run_with_cache (in-process)         {bare:8.2f} ms")
    print(f"three views, cold (one forward)          {cold:8.2f} ms   ratio {cold / bare:.2f}x")
    print(f"three views, cached                      {cached:8.2f} ms   ratio {cached / bare:.2f}x")
    for name, samples in split.items():
        samples = sorted(samples)
        print(f"  cold {name:<12} median {samples[len(samples) // 2]:8.2f} ms")


if __name__ == "__main__":
    main()
