"""The steered generation as a stream of NDJSON events, for the HTTP API.

The model is used by one request at a time: a worker thread holds the engine's model lock
while it generates and hands events to the response's event loop over an asyncio queue; when
the reader goes away (the page moved a slider and asked again), the worker stops at its next
step and frees the model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
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


def events(engine: Engine, req: SteerRequest) -> AsyncIterator[bytes]:
    """Check the request now (errors answer 4xx), then stream its events as NDJSON lines."""
    lm = engine.require_model()
    ids, _ = engine.tokenize(req.prompt, req.prepend_bos)
    with engine.model_lock:
        resolved = steering.resolve(lm, req.vectors)
    start = StreamEvent(type="start", vectors=[r.info() for r in resolved], prompt_tokens=len(ids))
    stop = threading.Event()

    def work(put) -> None:
        t0, n = time.perf_counter(), 0
        try:
            with engine.model_lock:
                for s in steering.generate_pair(lm, ids, resolved, req, stop):
                    n += 1
                    put(StreamEvent(type="token", step=s.step, base=_token(lm, s.base),
                                    steered=_token(lm, s.steered), kl=s.kl))  # fmt: skip
            secs = time.perf_counter() - t0
            put(StreamEvent(type="done", seconds=secs, tokens_per_s=n / secs if secs else None))
        except Exception as e:  # the stream has started: report in-band
            put(StreamEvent(type="error", message=f"{type(e).__name__}: {e}"))
        finally:
            put(_END)

    async def lines() -> AsyncIterator[bytes]:
        yield start.model_dump_json(exclude_none=True).encode() + b"\n"
        loop, q = asyncio.get_running_loop(), asyncio.Queue()

        def put(item: object) -> None:  # from the worker thread: no thread hop per read
            loop.call_soon_threadsafe(q.put_nowait, item)

        threading.Thread(target=work, args=(put,), name="steering", daemon=True).start()
        try:
            ended = False
            while not ended:  # one chunk of every event ready now: fewer writes per token
                items = [await q.get()]
                while items[-1] is not _END and not q.empty():
                    items.append(q.get_nowait())
                ended = items[-1] is _END
                chunk = [
                    i.model_dump_json(exclude_none=True).encode() for i in items if i is not _END
                ]
                if chunk:
                    yield b"\n".join(chunk) + b"\n"
        finally:
            stop.set()  # the reader left (a slider moved): the worker stops at its next step

    return lines()
