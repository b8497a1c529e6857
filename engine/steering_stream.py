"""The steered generation as a stream of NDJSON events, for the HTTP API.

The model is used by one request at a time: the generation runs on the engine's model thread
and hands events to the response's event loop over an asyncio queue; when the reader goes
away (the page moved a slider and asked again), the generation stops at its next step and
frees the model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from engine import interventions, steering, steering_models
from engine.errors import EngineError
from engine.schemas.steering import SteerRequest, StreamEvent, StreamToken

if TYPE_CHECKING:
    from engine.service import Engine

_END = object()
FLUSH_S = 0.02  # events reach the page at most every 20 ms (50 Hz), the first token at once


class TextSoFar:
    """One continuation's text, handed out as each token's new characters.

    Decoding token by token breaks characters whose bytes span tokens (each piece decodes to
    "\ufffd"). This decodes the whole continuation each step and hands out what is new,
    holding back a trailing partial character until the token that completes it arrives.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.ids, self.sent = tokenizer, [], 0

    def push(self, token_id: int | None) -> StreamToken | None:
        if token_id is None:
            return None
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, clean_up_tokenization_spaces=False)
        if text.endswith("\ufffd"):  # maybe a character cut in two: wait for the rest
            return StreamToken(id=token_id, text="")
        new, self.sent = text[self.sent :], len(text)
        return StreamToken(id=token_id, text=new)

    def rest(self) -> str:
        """What is still held back (a character the continuation never completed)."""
        text = self.tokenizer.decode(self.ids, clean_up_tokenization_spaces=False)
        return text[self.sent :]


def events(engine: Engine, req: SteerRequest) -> AsyncIterator[bytes]:
    """Check the request now (errors answer 4xx), then stream its events as NDJSON lines."""
    lm = engine.require_model(req.model)
    ids, _ = engine.tokenize(req.prompt, req.prepend_bos, req.model)
    resolved, applied = engine.compute(interventions.resolve_request, engine, lm, req)
    pair = _pair(engine, req, lm)  # side-by-side generation from two models (issue 14)
    if pair is not None and applied:
        raise EngineError(
            422, "directions_not_in_pair",
            "Saved directions act on one model at a time: side-by-side generation of two models "
            "takes steering vectors only. Steer model A or B alone to act on a direction.",
        )  # fmt: skip
    infos = [r.info() for r in resolved] + [a.info() for a in applied]
    start = StreamEvent(type="start", vectors=infos, prompt_tokens=len(ids))
    extra = interventions.hooks(applied, lm.model.cfg.device, lm.model.cfg.dtype)
    stop = threading.Event()

    def work(put) -> None:
        t0, n = time.perf_counter(), 0
        batch: list[StreamEvent] = []
        last = 0.0

        def emit(event: StreamEvent, flush: bool = False) -> None:
            # One hand-off to the event loop per FLUSH_S, not per token: each costs ~0.3 ms of
            # loop wake-up and socket write, more than a token of a small model. The first
            # token goes out at once (a slider move must show something immediately).
            nonlocal last
            batch.append(event)
            now = time.perf_counter()
            if flush or n <= 1 or now - last >= FLUSH_S:
                put(batch.copy())
                batch.clear()
                last = now

        try:
            base, steered = TextSoFar(lm.model.tokenizer), TextSoFar(lm.model.tokenizer)
            steps = (
                steering_models.generate_models(lm, pair[0], ids, resolved, pair[1], req, stop)
                if pair is not None
                else steering.generate_pair(lm, ids, resolved, req, stop, extra)
            )
            for s in steps:
                n += 1
                emit(StreamEvent(type="token", step=s.step, base=base.push(s.base),
                                 steered=steered.push(s.steered), kl=s.kl))  # fmt: skip
            secs = time.perf_counter() - t0
            emit(
                StreamEvent(type="done", seconds=secs, tokens_per_s=n / secs if secs else None,
                            base_rest=base.rest() or None,
                            steered_rest=steered.rest() or None),
                flush=True,
            )  # fmt: skip
        except Exception as e:  # the stream has started: report in-band
            emit(StreamEvent(type="error", message=f"{type(e).__name__}: {e}"), flush=True)
        finally:
            if batch:
                put(batch.copy())
            put(_END)

    async def lines() -> AsyncIterator[bytes]:
        yield start.model_dump_json(exclude_none=True).encode() + b"\n"
        loop, q = asyncio.get_running_loop(), asyncio.Queue()

        def put(item: object) -> None:  # from the worker thread: no thread hop per read
            loop.call_soon_threadsafe(q.put_nowait, item)

        engine.model_thread.submit(work, put)  # queued behind any other work on the model
        try:
            ended = False
            while not ended:  # one chunk of every event ready now: fewer writes per token
                items = [await q.get()]
                while items[-1] is not _END and not q.empty():
                    items.append(q.get_nowait())
                ended = items[-1] is _END
                chunk = [
                    e.model_dump_json(exclude_none=True).encode()
                    for i in items
                    if i is not _END
                    for e in i
                ]
                if chunk:
                    yield b"\n".join(chunk) + b"\n"
        finally:
            stop.set()  # the reader left (a slider moved): the worker stops at its next step

    return lines()


def _pair(engine: Engine, req: SteerRequest, lm) -> tuple | None:
    """With ``model_b``: slot B's model and the vectors resolved on it (checked now: 4xx)."""
    if req.model_b is None:
        return None
    lm_b = engine.require_model(req.model_b)
    steering_models.check_pair(lm, lm_b, req.model, req.model_b)
    primary = engine.require_model()
    return lm_b, engine.compute(steering_models.resolve_on, lm_b, req.vectors, primary)
