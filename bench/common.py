"""Benchmark helpers: timing medians and the model a benchmark runs on."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORGANISM = REPO / "assets" / "organism"
PROMPT_32 = (
    "When Mary and John went to the store, John gave a drink to Mary. The capital of "
    "France is Paris. Once upon a time, there was"
)


def timed(fn: Callable[[], object], repeat: int = 20, warmup: int = 2) -> float:
    """Median wall time of `fn` in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def model_dir(override: str | None = None) -> str:
    """`override` (any local Hugging Face model directory) or the embedded organism."""
    if override:
        return override
    if (ORGANISM / "config.json").exists():
        return str(ORGANISM)
    raise SystemExit("bench needs the embedded organism in assets/organism (or --model DIR)")
