"""All work on the model runs on the engine's one model thread, whoever asks for it."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.model_thread import ModelThread
from engine.schemas.analyses import AnalysisRequest


def test_run_returns_raises_and_nests_on_one_thread():
    mt = ModelThread()
    try:
        names = {mt.run(lambda: threading.current_thread().name) for _ in range(3)}
        with ThreadPoolExecutor(4) as pool:  # callers on other threads: the same one thread
            names |= set(
                pool.map(lambda _: mt.run(lambda: threading.current_thread().name), range(8))
            )
        assert len(names) == 1 and names.pop().startswith("model")
        assert mt.run(lambda: mt.run(lambda: 7) + 1) == 8  # nested: runs at once, no deadlock
        with pytest.raises(ZeroDivisionError):
            mt.run(lambda: 1 / 0)
    finally:
        mt.shutdown()


def test_analyses_from_any_thread_compute_on_the_model_thread(engine, monkeypatch):
    seen = []
    analysis = engine.analyses["predictions"]

    def recorded(run, params):
        seen.append(threading.current_thread().name)
        return analysis.fn(run, params)

    monkeypatch.setitem(engine.analyses, "predictions", dataclasses.replace(analysis, fn=recorded))
    prompts = [f"Once upon a time {i}" for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: engine.analyze("predictions", AnalysisRequest(prompt=p)), prompts))
    engine.analyze("predictions", AnalysisRequest(prompt="from the test's own thread"))
    assert len(seen) == 5 and set(seen) == {engine.compute(lambda: threading.current_thread().name)}
    assert seen[0].startswith("model")
