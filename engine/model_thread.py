"""One thread for all of the engine's work on the model.

PyTorch's CPU kernels run on OpenMP, and OpenMP gives every thread that launches a parallel
kernel its own team of worker threads. An engine that ran the model from whichever thread a
request arrived on (HTTP workers, job threads, a steering thread) ended up with several teams,
and their spinning workers slow each other down for good: on 2 cores a cold `predictions`
analysis on the organism took 6.1 ms when one thread ever ran the model, 10.7 ms once a second
had (bench/RESULTS.md). So the model is loaded, run and trained against from this thread only,
one piece of work at a time (which is also what the model lock guaranteed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ModelThread:
    """Runs work on one long-lived thread, holding `lock` (the engine's model lock)."""

    def __init__(self, lock: threading.RLock, name: str = "model") -> None:
        self.lock = lock
        self._here = threading.local()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=self._mark)

    def _mark(self) -> None:
        self._here.is_model_thread = True

    def on_it(self) -> bool:
        return getattr(self._here, "is_model_thread", False)

    def _locked(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        with self.lock:
            return fn(*args, **kwargs)

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> Future[T]:
        """Queue `fn` (e.g. a whole streamed generation); its future."""
        return self._pool.submit(self._locked, fn, args, kwargs)

    def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """`fn(*args, **kwargs)` on the model thread; its result, or its exception raised here.
        Called on the model thread itself it runs at once. Never call it while holding the
        model lock on another thread: the model thread may be waiting for that lock."""
        if self.on_it():
            return self._locked(fn, args, kwargs)
        return self.submit(fn, *args, **kwargs).result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
