"""Waiting for the engine without timing out while it is merely busy.

A request to the engine runs on a helper thread while the caller's thread watches it: as
long as ``/health`` answers (the engine serves it on its event loop, however busy the model
is), the wait goes on, and the caller's ``on_busy`` callback learns what the engine is busy
with (``describe``: "busy with attribution_graph, 45 %"). The wait ends with
``EngineUnavailable`` only when the engine stops answering: the connection refused (nothing
listens any more), or ``/health`` silent `misses` times in a row.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, TypeVar

import httpx

from engine.schemas.model import Health

if TYPE_CHECKING:
    from engine.client import EngineClient

T = TypeVar("T")
BusyCallback = Callable[[Health | None], None]  # /health's answer while busy; None: done


class EngineUnavailable(Exception):
    """The engine could not be reached (not started, stopped, or restarting)."""

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused  # nothing listens at the address (vs. no answer in time)


class EngineRequestError(Exception):
    def __init__(self, status: int, code: str, message: str, detail: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail or {}


class JobLost(EngineRequestError):
    """The engine does not know this job: it was lost when the engine stopped (or expired)."""

    def __init__(self, job_id: str, *, expired: bool = False):
        why = "expired" if expired else "was lost when the engine stopped"
        super().__init__(404, "unknown_job", f"The job {job_id} {why}.", {"job": job_id})
        self.job_id, self.expired = job_id, expired


def describe(health: Health) -> str:
    """What a busy engine is doing, in a few words."""
    job = health.job
    if job:
        return f"busy with {job.kind}, {100 * job.progress:.0f}%"
    return f"busy ({health.waiting} requests queued)"


def is_busy(health: Health) -> bool:
    return bool(health.job or health.waiting)


class Patience:
    def __init__(
        self,
        client: EngineClient,
        *,
        check_s: float = 1.0,
        probe_s: float = 5.0,
        misses: int = 3,
        limit_s: float = 3600.0,
    ):
        self._client, self.check_s, self.probe_s, self.misses = client, check_s, probe_s, misses
        self.limit_s = limit_s
        self.forever = httpx.Timeout(limit_s, connect=10.0)  # one request's socket limits
        self._pool = ThreadPoolExecutor(32, thread_name_prefix="engine-request")
        self._local = threading.local()

    def set_callback(self, callback: BusyCallback | None) -> None:
        """From now on, waits of the calling thread report to `callback` (a page's notice)."""
        self._local.callback = callback

    @contextlib.contextmanager
    def on_busy(self, callback: BusyCallback | None) -> Iterator[None]:
        """While inside, waits of this thread report to `callback`."""
        before = getattr(self._local, "callback", None)
        self._local.callback = callback
        try:
            yield
        finally:
            self._local.callback = before

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wait(self, send: Callable[[], T]) -> T:
        """`send()` on a helper thread; its result, waiting while the engine lives."""
        fut = self._pool.submit(send)
        watch = _Watch(self, getattr(self._local, "callback", None))
        try:
            while True:
                try:
                    return fut.result(timeout=self.check_s)
                except FutureTimeout:
                    watch.check()
        finally:
            watch.done()

    def stream(self, make: Callable[[threading.Event], Iterator[T]]) -> Iterator[T]:
        """The items of `make(stop)`, read on a helper thread, waiting while the engine lives;
        closing this iterator sets `stop`."""
        q: queue.Queue = queue.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in make(stop):
                    q.put((True, item))
                q.put((False, None))
            except BaseException as e:  # noqa: BLE001 (raised in the reader's thread)
                q.put((False, e))

        self._pool.submit(produce)
        watch = _Watch(self, getattr(self._local, "callback", None))
        try:
            while True:
                try:
                    more, item = q.get(timeout=self.check_s)
                except queue.Empty:
                    watch.check()
                    continue
                watch.done()
                if not more:
                    if item is not None:
                        raise item
                    return
                yield item
        finally:
            stop.set()
            watch.done()


class _Watch:
    """One wait: probes ``/health`` each time the caller has waited another `check_s`."""

    def __init__(self, patience: Patience, callback: BusyCallback | None):
        self.p, self.callback = patience, callback
        self.t0, self.missed, self.shown = time.monotonic(), 0, False

    def check(self) -> None:
        waited = time.monotonic() - self.t0
        if waited > self.p.limit_s:
            raise EngineUnavailable(f"The engine is alive but did not answer in {waited:.0f} s.")
        try:
            health = self.p._client.health(timeout=self.p.probe_s)
        except EngineUnavailable as e:
            self.missed += 1
            if e.refused or self.missed >= self.p.misses:
                raise EngineUnavailable(f"The engine stopped answering. {e}") from e
            return
        self.missed = 0
        if self.callback is not None and is_busy(health):
            self.callback(health)
            self.shown = True

    def done(self) -> None:
        if self.shown and self.callback is not None:
            self.callback(None)
        self.shown = False
