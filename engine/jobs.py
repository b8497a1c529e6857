"""Long work as jobs: one worker thread runs them in order, with progress, ETA and cancel.

A job function receives a ``JobContext``: it calls ``ctx.progress(fraction, message)`` as it
goes, which also raises ``JobCancelled`` once someone asked to cancel, so a job stops at
its next progress report.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
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
    def __init__(self, job: Job):
        self._job = job

    def progress(self, fraction: float, message: str = "") -> None:
        if self._job.cancel_requested.is_set():
            raise JobCancelled()
        self._job.progress = max(0.0, min(1.0, fraction))
        if message:
            self._job.message = message

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_requested.is_set()


class JobManager:
    def __init__(self, keep_finished: int = 100):
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
        return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

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
        return any(j.status == JobStatus.running for j in self._jobs.values())

    def _trim(self) -> None:
        done = [j for j in self.list() if j.status.finished]
        for j in done[self._keep :]:
            self._jobs.pop(j.id, None)

    def _finish(self, job: Job, status: JobStatus, message: str) -> None:
        job.status, job.message, job.finished = status, message, time.time()

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
                job.result = job.fn(JobContext(job))
                job.progress = 1.0
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
