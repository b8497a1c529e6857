"""One thread for all of the engine's work on the model.

PyTorch's CPU kernels run on OpenMP, and OpenMP gives every thread that launches a parallel
kernel its own team of worker threads. An engine that ran the model from whichever thread a
request arrived on (HTTP workers, job threads, a steering thread) ended up with several teams,
and their spinning workers slow each other down for good: on 2 cores a cold `predictions`
analysis on the organism took 6.1 ms when one thread ever ran the model, 10.7 ms once a second
had (bench/RESULTS.md). So the model is loaded, run and trained against from this thread only,
one piece of work at a time. That also serializes all work on the model and on what is built
on it (its session, engine/session.py), so none of it needs a lock: no other thread touches it.

Two queues feed it: interactive work (a view's analysis, a steering stream) always goes before
background work (the steps of a job: work queued from inside ``background()``). A long step
(one circuit-tracer ``attribute`` call) hands the thread over between its batches by calling
``serve_waiting()`` there, on this thread: the interactive work queued meanwhile runs at once,
so it never waits for the whole job, and all torch work still stays on one thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import TypeVar

from engine.malloc import one_arena

T = TypeVar("T")
_Task = tuple[Future, Callable, tuple, dict]


class ModelThread:
    """Runs work on one long-lived thread, one piece at a time.

    `guard`, when given, is entered around each piece of interactive work run inside a long
    step's pause (``serve_waiting``), e.g. to give it torch's default grad mode back."""

    def __init__(
        self, name: str = "model", guard: Callable[[], AbstractContextManager] | None = None
    ) -> None:
        self._guard = guard or contextlib.nullcontext
        self._here = threading.local()  # on the model thread: is_model_thread
        self._caller = threading.local()  # on a caller's thread: background
        self._interactive: deque[_Task] = deque()
        self._background: deque[_Task] = deque()
        self._cv = threading.Condition()
        self._stopped = False
        self.interleaved = 0  # interactive tasks run inside a long step's pauses, for tests
        one_arena()  # before the thread allocates: it reuses the main arena (engine/malloc.py)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def on_it(self) -> bool:
        return getattr(self._here, "is_model_thread", False)

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """Work this thread queues meanwhile waits behind all interactive work (job steps)."""
        before = getattr(self._caller, "background", False)
        self._caller.background = True
        try:
            yield
        finally:
            self._caller.background = before

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> Future[T]:
        """Queue `fn` (e.g. a whole streamed generation); its future."""
        fut: Future[T] = Future()
        with self._cv:
            if self._stopped:
                raise RuntimeError("the model thread has stopped")
            queue = self._background if getattr(self._caller, "background", False) else (
                self._interactive
            )  # fmt: skip
            queue.append((fut, fn, args, kwargs))
            self._cv.notify()
        return fut

    def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """`fn(*args, **kwargs)` on the model thread; its result, or its exception raised here.
        Called on the model thread itself it runs at once."""
        if self.on_it():
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()

    def waiting(self) -> int:
        """Pieces of work queued (not running)."""
        return len(self._interactive) + len(self._background)

    def serve_waiting(self) -> int:
        """On the model thread, inside a long step: run the interactive work queued now (and
        any that arrives meanwhile), then return to the step. Elsewhere: nothing. How many ran."""
        if not self.on_it():
            return 0
        n = 0
        while True:
            with self._cv:
                if not self._interactive:
                    return n
                task = self._interactive.popleft()
            with self._guard():
                self._execute(task)
            n += 1
            self.interleaved += 1

    def _execute(self, task: _Task) -> None:
        fut, fn, args, kwargs = task
        if not fut.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 (handed to the caller, as an executor does)
            fut.set_exception(e)
        else:
            fut.set_result(result)

    def _loop(self) -> None:
        self._here.is_model_thread = True
        while True:
            with self._cv:
                while not (self._interactive or self._background or self._stopped):
                    self._cv.wait()
                if self._stopped:
                    return
                queue = self._interactive or self._background
                task = queue.popleft()
            self._execute(task)

    def shutdown(self) -> None:
        with self._cv:
            self._stopped = True
            for fut, *_ in (*self._interactive, *self._background):
                fut.cancel()
            self._interactive.clear()
            self._background.clear()
            self._cv.notify_all()
