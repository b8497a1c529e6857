"""Waiting for a job over HTTP without holding a thread: ``GET /jobs/{id}/wait?timeout_s=``.

The route is async: it awaits an asyncio event that the job sets (``Job.on_finish``, from the
job's thread) when it finishes, so any number of waiters cost no worker thread of the server's
pool, and ``/health`` and the other routes keep answering while they wait.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Query

from engine.jobs import Job
from engine.schemas.jobs import JobResult
from engine.service import Engine

TIMEOUT = Query(default=30.0, gt=0, le=600, description="answer after this long at the latest")


async def wait_for(job: Job, timeout_s: float) -> JobResult:
    """The job's state once it has finished, or after `timeout_s` seconds."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    forget = job.on_finish(lambda: loop.call_soon_threadsafe(done.set))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        forget()
    return JobResult(job=job.info(), result=job.result if job.status.finished else None)


def router(engine: Engine) -> APIRouter:
    r = APIRouter(tags=["jobs"])

    @r.get("/jobs/{job_id}/wait", response_model=JobResult)
    async def wait_job(job_id: str, timeout_s: float = TIMEOUT) -> JobResult:
        """Answer when the job has finished (or after `timeout_s`): one request instead of
        polling, which would take the engine's GIL from the job's loop each time."""
        return await wait_for(engine.jobs.get(job_id), timeout_s)

    return r
