"""One forward pass of a prompt, shared by every analysis of it.

A ``PromptRun`` is the tokens plus the logits and activation cache of one
``run_with_cache``, computed on first use. Side B of a pair analysis that reads only logits
and residual streams gets a light run instead (``run_light``: the logits and the residual
streams, no other activation), until something reads its full cache. The engine keeps a few recent runs so that
opening several views of the same prompt costs one forward pass; the activation cache
itself never leaves the engine process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache

from engine.loading import LoadedModel
from engine.schemas.common import TokenInfo
from engine.validation import check_index


def kept(hook: str) -> bool:
    """The activations a run keeps: all but the pre-softmax attention scores, as large as the
    patterns (heads x pos x pos a layer) and read by no analysis, and the unembedding's
    output, the logits the run returns anyway (pos x vocab)."""
    return not hook.endswith("hook_attn_scores") and hook != "unembed.hook_out"


def stream(hook: str) -> bool:
    """The activations a light run keeps: the residual streams (every block's ``resid_pre``
    and ``resid_post``), a few percent of a full cache (no patterns, no MLP activations)."""
    return hook.endswith(("hook_resid_pre", "hook_resid_post"))


class PromptRun:
    def __init__(self, lm: LoadedModel, token_ids: list[int], infos: list[TokenInfo]):
        self.lm = lm
        self.token_ids = token_ids
        self.token_infos = infos
        self.memo: dict = {}  # per-prompt results of analyses (e.g. lens blocks), kept with it
        # a light run (``run_light``): its logits and residual streams, until the full run
        self._light: tuple[Float[Tensor, "pos vocab"], dict[str, Tensor]] | None = None

    @property
    def tokens(self) -> Int[Tensor, "1 pos"]:
        return torch.tensor([self.token_ids], device=self.lm.device)

    @cached_property
    def _forward(self) -> tuple[Float[Tensor, "pos vocab"], ActivationCache]:
        with torch.inference_mode():
            logits, cache = self.lm.model.run_with_cache(self.tokens, names_filter=kept)
        self._light = None  # the same logits, now held by the full run
        return logits[0].float(), cache.remove_batch_dim()

    def run_light(self) -> None:
        """Run the forward pass keeping only its logits and residual streams, when nothing
        has run: what side B of an analysis that reads nothing else asks for, so that it
        neither builds nor keeps a full activation cache (most of a run's memory, and at 1000
        tokens of GPT-2 small much of its time: fresh pages faulted in). Reading ``cache``
        later runs the full pass; ``act`` reads a stream from whichever run there is."""
        if "_forward" not in self.__dict__ and self._light is None:
            with torch.inference_mode():
                logits, cache = self.lm.model.run_with_cache(self.tokens, names_filter=stream)
            self._light = logits[0].float(), {h: t[0] for h, t in cache.cache_dict.items()}

    @property
    def logits(self) -> Float[Tensor, "pos vocab"]:
        light = self._light
        if light is not None and "_forward" not in self.__dict__:
            return light[0]
        return self._forward[0]

    def act(self, hook: str) -> Float[Tensor, "pos ..."]:
        """The activation at `hook` ([pos, ...]): from the light run when it holds it and the
        full run has not run, else from the full cache (running it when needed)."""
        light = self._light
        if light is not None and "_forward" not in self.__dict__ and hook in light[1]:
            return light[1][hook]
        return self.cache[hook]

    @property
    def cache(self) -> ActivationCache:
        return self._forward[1]

    @property
    def nbytes(self) -> int:
        """Bytes its forward pass holds (0 until it has run)."""
        if "_forward" not in self.__dict__:
            light = self._light
            if light is None:
                return 0
            return sum(t.numel() * t.element_size() for t in (light[0], *light[1].values()))
        logits, cache = self._forward
        held = sum(t.numel() * t.element_size() for t in cache.cache_dict.values())
        return held + logits.numel() * logits.element_size()

    def position(self, pos: int | None) -> int:
        """`pos`, or the last position when None; a clear 422 when past the prompt."""
        if pos is None:
            return len(self.token_ids) - 1
        check_index("pos", pos, len(self.token_ids), owner="this prompt", noun="tokens")
        return pos


class RunStore:
    """The most recent prompt runs of the loaded model, least recently used dropped first:
    at most `max_runs`, and (the newest excepted) no more bytes than the model's memory
    estimate allowed for activations, so a real-size model keeps fewer full caches."""

    def __init__(self, max_runs: int = 8):
        self._runs: OrderedDict[tuple, PromptRun] = OrderedDict()
        self._max = max_runs
        self._lock = threading.Lock()

    def get(self, lm: LoadedModel, token_ids: list[int], infos: list[TokenInfo]) -> PromptRun:
        key = (lm.fingerprint, tuple(token_ids))
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                run = self._runs[key] = PromptRun(lm, token_ids, infos)
            self._runs.move_to_end(key)
            budget = lm.memory.activations_bytes if lm.memory is not None else None
            while len(self._runs) > self._max or (
                budget is not None
                and len(self._runs) > 1
                and sum(r.nbytes for r in self._runs.values()) > budget
            ):
                self._runs.popitem(last=False)
            return run

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()
