"""The engine: its loaded models, their analyses, the result cache and the job queue.

Models live in slots: "a" is the primary model (``Engine.lm``, the default of every request),
others ("b", ...) are loaded beside it on demand (``Engine.extra``; engine/pairs.py compares
two of them).

UI-free and HTTP-free: ``engine.api`` exposes it over HTTP and tests call it directly.
One request uses the model at a time, on the model thread (``compute``; see
engine/model_thread.py); cached results do not need it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict

import torch

from cache import ResultCache, result_key
from engine import pairs, validation
from engine.analyses.base import Analysis, model_loaded
from engine.analyses.registry import REGISTRY, feature_capabilities
from engine.errors import EngineError
from engine.graphs.service import GraphService, transcoder_capability
from engine.job_kinds import JOB_KINDS, check_load
from engine.jobs import Job, JobManager
from engine.layout import forward_layout
from engine.loading import LoadedModel, estimate_load, load_model
from engine.memory import Budget, held_bytes
from engine.model_thread import ModelThread
from engine.run import RunStore
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.common import PRIMARY, TokenInfo
from engine.schemas.model import (
    Capabilities,
    Capability,
    Health,
    LoadEstimate,
    LoadModelRequest,
    ModelInfo,
    SlotInfo,
)
from engine.session import ModelSession
from engine.settings import EngineSettings
from engine.validation import parse_params

log = logging.getLogger(__name__)


def fresh_grad_mode() -> contextlib.AbstractContextManager:
    """Torch's default grad mode, for work run inside a job step's pause (which may be in
    another mode)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode(False))
    stack.enter_context(torch.enable_grad())
    return stack


TOKENIZED_KEPT = 32  # prompts whose tokens the engine keeps


class Engine:
    def __init__(self, settings: EngineSettings, *, load: bool = True):
        self.settings = settings
        self.engine_id = uuid.uuid4().hex[:12]
        self.started = time.time()
        self.cache = ResultCache(
            settings.cache_dir,
            size_limit_bytes=settings.cache_size_mb << 20,
            memory_limit_bytes=settings.memory_cache_mb << 20,
        )
        self.runs = RunStore(settings.max_runs)
        self._tokenized: OrderedDict[tuple, tuple[tuple[int, ...], list[TokenInfo]]] = OrderedDict()
        self._tokenized_lock = threading.Lock()
        self.model_thread = ModelThread(guard=fresh_grad_mode)
        self.lm: LoadedModel | None = None  # slot "a", the primary model
        self.extra: dict[str, LoadedModel] = {}  # the other slots' models
        self.analyses = REGISTRY
        self.job_kinds = JOB_KINDS
        self.jobs = JobManager(
            between_steps=self.model_thread.serve_waiting, step_scope=self.model_thread.background
        )
        self.graphs = GraphService(self)
        if load and settings.model:
            self.load(settings.model, dtype=settings.dtype, device=settings.device)

    # --- model -----------------------------------------------------------------
    def load(
        self,
        name: str,
        *,
        dtype: str = "float32",
        device: str | None = None,
        max_context: int | None = None,
        slot: str = PRIMARY,
    ) -> ModelInfo:
        def swap() -> None:
            lm = load_model(
                name,
                device=device or self.settings.device,
                dtype=dtype,
                max_context=max_context or self.settings.max_context,
                n_devices=self.settings.n_devices,
                budget=self.budget(slot),
            )
            self.use(lm, slot)

        self.compute(swap)
        return self.model_info(slot)

    def use(self, lm: LoadedModel, slot: str = PRIMARY) -> None:
        """Serve `lm` in `slot` from now on: open its session (engine/session.py; the SAEs
        shipped in its directory are attached) and drop the prompt runs, on the model thread.
        The slot's old model and its session go. Its weights are laid out for the forward pass
        first (``engine.layout.forward_layout``: the same values, no copy per forward pass)."""

        def swap() -> None:
            forward_layout(lm.model)  # no weight copied per forward pass (engine/layout.py)
            lm.opened = ModelSession.open(lm)
            if slot == PRIMARY:
                self.lm = lm
            else:
                self.extra[slot] = lm
            self.runs.clear()

        self.compute(swap)

    def budget(self, slot: str) -> Budget:
        """The memory a model loaded into `slot` may use beside the other slots' models: the
        device's free memory less what their prompt runs may still take (their weights are
        already out of it), or the engine's memory limit less all they may hold."""
        others = [lm.memory for s, lm in self.slots().items() if s != slot and lm.memory]
        if self.settings.memory_limit_mb is None:
            return Budget(None, sum(m.activations_bytes for m in others))
        return Budget(self.settings.memory_limit_mb << 20, sum(held_bytes(m) for m in others))

    def slots(self) -> dict[str, LoadedModel]:
        """Every loaded model by slot, the primary first."""
        return {**({PRIMARY: self.lm} if self.lm is not None else {}), **self.extra}

    def models(self) -> list[SlotInfo]:
        """Every loaded model, and whether it compares token by token with the primary."""
        out = []
        for s, lm in self.slots().items():
            why = pairs.tokenizer_mismatch(self.lm, lm) if self.lm is not None else ""
            out.append(SlotInfo(slot=s, model=self.model_info(s), comparable=not why, reason=why))
        return out

    def unload(self, slot: str) -> list[SlotInfo]:
        """Drop the model of a slot other than the primary (its session and runs go too)."""
        if slot == PRIMARY:
            raise EngineError(
                422, "primary_model", "The primary model (slot 'a') stays: load another into it."
            )
        self.require_model(slot)

        def drop() -> None:
            self.extra.pop(slot, None)
            self.runs.clear()

        self.compute(drop)
        return self.models()

    def estimate(self, req: LoadModelRequest) -> LoadEstimate:
        req = check_load(self, req)  # the same confinement as loading
        return estimate_load(
            req.name,
            device=req.device or self.settings.device,
            dtype=req.dtype,
            max_context=req.max_context or self.settings.max_context,
            n_devices=self.settings.n_devices,
            budget=self.budget(req.slot),
        )

    def compute(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` on the model thread, one piece at a time: all work on the
        model goes through here (engine/model_thread.py says why)."""
        return self.model_thread.run(fn, *args, **kwargs)

    def require_model(self, slot: str = PRIMARY) -> LoadedModel:
        if slot != PRIMARY:
            if slot not in self.extra:
                raise EngineError(
                    404,
                    "no_such_model",
                    f"No model in slot {slot!r} (loaded: {sorted(self.slots())}): load one "
                    f"into it first (slot={slot!r}).",
                )
            return self.extra[slot]
        if self.lm is None:
            raise EngineError(409, "no_model", "No model is loaded: load one first.")
        return self.lm

    def model_info(self, slot: str = PRIMARY) -> ModelInfo | None:
        lm = self.lm if slot == PRIMARY else self.require_model(slot)
        if lm is None:
            return None
        cfg = lm.model.cfg
        return ModelInfo(
            name=lm.name,
            source=lm.source,
            fingerprint=lm.fingerprint,
            device=lm.device,
            dtype=lm.dtype,
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            d_model=cfg.d_model,
            d_vocab=cfg.d_vocab,
            n_ctx=cfg.n_ctx,
            load_seconds=round(lm.load_seconds, 3),
            ref=str(lm.local_dir) if lm.local_dir is not None else lm.name,
            path=lm.path,
            model_max_context=lm.model_max_context,
            memory=lm.memory.model_dump() if lm.memory else None,
            notes=lm.notes,
        )

    def health(self) -> Health:
        """Answers without the model or its thread (the API serves it on the event loop)."""
        job = self.jobs.running()
        return Health(
            status="ok",
            engine_id=self.engine_id,
            pid=os.getpid(),
            model=self.lm.name if self.lm else None,
            uptime_s=round(time.time() - self.started, 3),
            busy=job is not None,
            job=None if job is None else job.info(),
            waiting=self.model_thread.waiting(),
        )

    def capabilities(self, slot: str = PRIMARY) -> Capabilities:
        """The analyses' features (engine/analyses/registry.py), then the jobs' own:
        generation (steering) and transcoders (attribution graphs); a feature the model
        itself rules out (``LoadedModel.unavailable``) says why. Of the model in `slot`."""
        lm = self.lm if slot == PRIMARY else self.require_model(slot)
        tc_ok, tc_why = transcoder_capability(lm)
        features = feature_capabilities(lm)
        ok, why = model_loaded(lm)
        features["generation"] = Capability(available=ok, reason=why)
        features["transcoders"] = Capability(available=tc_ok, reason=tc_why)
        for feature, why in (lm.unavailable if lm else {}).items():
            features[feature] = Capability(available=False, reason=why)
        return Capabilities(
            model=self.model_info(slot),
            features=features,
            analyses=sorted(self.analyses),
            jobs=sorted(self.job_kinds),
            slot=slot,
            slots=list(self.slots()),
        )

    # --- prompts -----------------------------------------------------------------
    def tokenize(
        self, prompt: str, prepend_bos: bool = True, model: str = PRIMARY
    ) -> tuple[list[int], list[TokenInfo]]:
        """The prompt's ids and tokens by the tokenizer of slot `model` (read-only: shared by
        the requests of one page). Kept for the last `TOKENIZED_KEPT` prompts: every request
        of a page tokenizes its prompt for the result's key, 28 ms at 1000 tokens, 10x what
        a cached answer takes else."""
        lm = self.require_model(model)
        key = (id(lm), lm.fingerprint, prompt, prepend_bos)
        with self._tokenized_lock:
            kept = self._tokenized.get(key)
            if kept is not None:
                self._tokenized.move_to_end(key)
                return list(kept[0]), kept[1]
        ids, infos = self._tokenize(lm, prompt, prepend_bos)
        with self._tokenized_lock:
            self._tokenized[key] = (tuple(ids), infos)
            while len(self._tokenized) > TOKENIZED_KEPT:
                self._tokenized.popitem(last=False)
        return ids, infos

    def _tokenize(
        self, lm: LoadedModel, prompt: str, prepend_bos: bool
    ) -> tuple[list[int], list[TokenInfo]]:
        validation.check_prompt_text(prompt)
        tok = lm.model.tokenizer
        enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        texts = tok.batch_decode([[i] for i in ids])  # each token alone, as decode([i])
        infos = [
            TokenInfo(pos=0, id=i, text=t, start=s, end=e)
            for i, t, (s, e) in zip(ids, texts, offsets, strict=True)
        ]
        if prepend_bos and tok.bos_token_id is not None:
            ids = [tok.bos_token_id] + ids
            infos = [
                TokenInfo(pos=0, id=tok.bos_token_id, text=tok.bos_token, start=None, end=None)
            ] + infos
        for pos, info in enumerate(infos):
            info.pos = pos
        validation.check_length(len(ids), lm.n_ctx, lm.model_max_context)
        return ids, infos

    # --- analyses ----------------------------------------------------------------
    def analysis(self, name: str) -> Analysis:
        if name not in self.analyses:
            raise EngineError(
                404,
                "unknown_analysis",
                f"No analysis named {name!r}; known: {sorted(self.analyses)}.",
            )
        return self.analyses[name]

    def analyze(self, name: str, request: AnalysisRequest) -> bytes:
        """The analysis result as JSON bytes, from the cache when it has it."""
        analysis = self.analysis(name)
        lm = self.require_model(request.model)
        if name in lm.unavailable:
            raise EngineError(422, "unavailable_here", f"{name}: {lm.unavailable[name]}")
        params = parse_params(analysis.params, request.params)
        ids, infos = self.tokenize(request.prompt, request.prepend_bos, request.model)
        analysis.check(lm, params)
        other = pairs.other_side(self, analysis, request, lm, ids, params)  # pairs only
        key_params = params.model_dump(mode="json") | (other.key if other else {})
        key = result_key(lm.fingerprint, ids, name, analysis.version, key_params)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        t0 = time.perf_counter()

        def run():
            run = self.runs.get(lm, ids, infos)
            if other is None:
                return analysis.fn(run, params)
            return analysis.fn(
                other.pair(run, self.runs.get(other.lm, other.ids, other.infos)), params
            )

        result = self.compute(run)
        log.debug("%s computed in %.1f ms", name, (time.perf_counter() - t0) * 1e3)
        data = result.model_dump_json().encode()
        self.cache.set(key, data)
        return data

    # --- jobs --------------------------------------------------------------------
    def start_job(self, kind: str, raw_params: dict) -> Job:
        if kind not in self.job_kinds:
            raise EngineError(
                404, "unknown_job_kind", f"No job kind {kind!r}; known: {sorted(self.job_kinds)}."
            )
        spec = self.job_kinds[kind]
        if self.lm is not None and kind in self.lm.unavailable:
            raise EngineError(422, "unavailable_here", f"{kind}: {self.lm.unavailable[kind]}")
        params = parse_params(spec.params, raw_params)
        if spec.check is not None:  # bad input is a 4xx now, not a failed job later
            params = spec.check(self, params)
        return self.jobs.submit(kind, lambda ctx: spec.run(self, ctx, params))

    def close(self) -> None:
        self.jobs.shutdown()
        self.model_thread.shutdown()
        self.cache.close()
