"""The steered generation as a stream of NDJSON events, for the HTTP API.

The model is used by one request at a time: a worker thread holds the engine's model lock
while it generates and hands events over a queue, so the response can be read from any
thread; when the reader goes away (the page moved a slider and asked again), the worker stops
at its next step and frees the model.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine import steering
from engine.schemas.steering import SteerRequest, StreamEvent, StreamToken

if TYPE_CHECKING:
    from engine.service import Engine

_END = object()


def _token(lm, token_id: int | None) -> StreamToken | None:
    if token_id is None:
        return None
    return StreamToken(id=token_id, text=lm.model.tokenizer.decode([token_id]))


def events(engine: Engine, req: SteerRequest) -> Iterator[bytes]:
    """Check the request now (errors answer 4xx), then stream its events as NDJSON lines."""
    lm = engine.require_model()
    ids, _ = engine.tokenize(req.prompt, req.prepend_bos)
    with engine.model_lock:
        resolved = steering.resolve(lm, req.vectors)
    start = StreamEvent(type="start", vectors=[r.info() for r in resolved], prompt_tokens=len(ids))
    q: queue.Queue = queue.Queue(maxsize=64)
    stop = threading.Event()

    def work() -> None:
        t0, n = time.perf_counter(), 0
        try:
            with engine.model_lock:
                for s in steering.generate_pair(lm, ids, resolved, req, stop):
                    n += 1
                    q.put(StreamEvent(type="token", step=s.step, base=_token(lm, s.base),
                                      steered=_token(lm, s.steered), kl=s.kl))  # fmt: skip
            secs = time.perf_counter() - t0
            q.put(StreamEvent(type="done", seconds=secs, tokens_per_s=n / secs if secs else None))
        except Exception as e:  # the stream has started: report in-band
            q.put(StreamEvent(type="error", message=f"{type(e).__name__}: {e}"))
        finally:
            q.put(_END)

    def lines() -> Iterator[bytes]:
        yield start.model_dump_json(exclude_none=True).encode() + b"\n"
        worker = threading.Thread(target=work, name="steering", daemon=True)
        worker.start()
        try:
            while (item := q.get()) is not _END:
                yield item.model_dump_json(exclude_none=True).encode() + b"\n"
        finally:
            stop.set()
            while worker.is_alive():  # drain so a blocked put lets the worker see `stop`
                with contextlib.suppress(queue.Empty):
                    q.get(timeout=0.05)

    return lines()
