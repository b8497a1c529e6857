"""Long work as jobs: one worker thread runs them in order, with progress, ETA and cancel.

A job function receives a ``JobContext``: it calls ``ctx.progress(fraction, message)`` as it
goes, which also raises ``JobCancelled`` once someone asked to cancel, so a job stops at
its next progress report. Each report is also a pause: the manager's `between_steps` runs
there (the engine's: serve interactive work waiting for the model thread), and the job's own
work runs inside `step_scope` (the engine's: queue it behind interactive work).

Waiting for a job needs no thread: ``Job.on_finish`` calls back once it has finished.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError
from engine.schemas.jobs import JobInfo, JobStatus

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    pass


@dataclass
class Job:
    id: str
    kind: str
    fn: Callable[["JobContext"], Any]
    status: JobStatus = JobStatus.queued
    progress: float = 0.0
    message: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: str | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    _callbacks: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _cb_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_finish(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from the job's thread) once the job has finished, at once if it
        has; returns a function that forgets the callback."""
        with self._cb_lock:
            if not self.status.finished:
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._cb_lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def _finished(self) -> None:
        with self._cb_lock:
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a waiter that went away must not break the job's worker
                log.exception("job %s: a finish callback failed", self.id)

    def info(self) -> JobInfo:
        eta = None
        if self.status == JobStatus.running and self.started and self.progress > 0:
            elapsed = time.time() - self.started
            eta = elapsed * (1 - self.progress) / self.progress
        return JobInfo(
            id=self.id,
            kind=self.kind,
            status=self.status,
            progress=round(self.progress, 4),
            message=self.message,
            eta_s=eta,
            created=self.created,
            started=self.started,
            finished=self.finished,
            error=self.error,
        )


class JobContext:
    def __init__(self, job: Job, between_steps: Callable[[], object] | None = None):
        self._job = job
        self._between = between_steps

    def progress(self, fraction: float, message: str = "") -> None:
        if self._job.cancel_requested.is_set():
            raise JobCancelled()
        self._job.progress = max(0.0, min(1.0, fraction))
        if message:
            self._job.message = message
        if self._between is not None:
            self._between()

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_requested.is_set()


class JobManager:
    def __init__(
        self,
        keep_finished: int = 100,
        *,
        between_steps: Callable[[], object] | None = None,
        step_scope: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    ):
        self._between, self._scope = between_steps, step_scope
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._keep = keep_finished
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="engine-jobs", daemon=True)
        self._worker.start()

    def submit(self, kind: str, fn: Callable[[JobContext], Any]) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, fn=fn)
        with self._lock:
            self._jobs[job.id] = job
            self._trim()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise EngineError(
                404, "unknown_job", f"No job with id {job_id!r} (it may have expired)."
            )
        return job

    def list(self) -> list[Job]:
        return sorted(list(self._jobs.values()), key=lambda j: j.created, reverse=True)

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if not job.status.finished:
            job.cancel_requested.set()
            if job.status == JobStatus.queued:
                self._finish(job, JobStatus.cancelled, "cancelled before it started")
            else:
                job.message = "cancelling"
        return job

    def busy(self) -> bool:
        return self.running() is not None

    def running(self) -> Job | None:
        """The job running now, if any (answers from any thread, without the model)."""
        return next((j for j in list(self._jobs.values()) if j.status == JobStatus.running), None)

    def _trim(self) -> None:
        done = [j for j in self.list() if j.status.finished]
        for j in done[self._keep :]:
            self._jobs.pop(j.id, None)

    def _finish(self, job: Job, status: JobStatus, message: str) -> None:
        job.status, job.message, job.finished = status, message, time.time()
        job._finished()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.status != JobStatus.queued:
                continue
            job.status, job.started, job.message = JobStatus.running, time.time(), "running"
            t0 = time.perf_counter()
            try:
                with self._scope():
                    result = job.fn(JobContext(job, self._between))
                job.result, job.progress = result, 1.0
                self._finish(job, JobStatus.done, f"done in {time.perf_counter() - t0:.1f} s")
            except JobCancelled:
                self._finish(job, JobStatus.cancelled, "cancelled")
            except EngineError as e:
                job.error = e.message
                self._finish(job, JobStatus.failed, e.message)
            except Exception as e:  # a failed job must not take the worker down
                log.exception("job %s (%s) failed", job.id, job.kind)
                job.error = f"{type(e).__name__}: {e}"
                self._finish(job, JobStatus.failed, job.error)
            log.info("job %s (%s) %s", job.id, job.kind, job.message)

    def shutdown(self) -> None:
        for job in self._jobs.values():
            job.cancel_requested.set()
        self._queue.put(None)
