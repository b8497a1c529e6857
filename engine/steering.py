"""Steering: vectors added at hook points while generating, next to an unsteered baseline.

``resolve`` turns a request's vector specs into directions at hook points (an SAE or
transcoder latent's decoder row, or a contrastive mean difference) and checks them.
``generate_pair`` runs the baseline and the steered continuation step by step, each on its own
TransformerLens KV cache (``TransformerLensKeyValueCache``, the cache
``HookedTransformer.generate`` uses) through the same code and with a generator seeded alike,
so with every coefficient at 0 the two are the same tokens. The baseline of a prompt and
sampling settings is kept, so moving a slider recomputes only the steered continuation. Each
step yields both tokens and KL(steered || base) of that step's next-token distributions.
A *condition* gates a vector to the positions where an SAE latent (read at or before the
vector's hook point) is above its threshold.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import TransformerLensKeyValueCache

from engine import saes
from engine.errors import EngineError
from engine.loading import LoadedModel
from engine.schemas.steering import (
    Condition,
    ResolvedVector,
    SteeringVector,
    SteerRequest,
    VectorKind,
)

STEERABLE = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
_STAGE = {"hook_resid_pre": 0, "attn": 2, "hook_attn_out": 3, "hook_resid_mid": 4, "ln2": 5,
          "mlp": 6, "hook_mlp_out": 7, "hook_resid_post": 8}  # fmt: skip


def hook_order(hook: str) -> tuple[int, int]:
    """Where a hook point sits in the forward pass: (block, stage); embeddings first."""
    m = re.match(r"blocks\.(\d+)\.([a-z_0-9]+)", hook)
    if not m:
        return (-1, 0) if "embed" in hook else (10**6, 0)
    return int(m.group(1)), _STAGE.get(m.group(2), 1)


@dataclass
class Resolved:
    hook: str
    direction: Float[Tensor, " d"]
    coefficient: float
    label: str
    gate: saes.Dictionary | Probe | None = None
    gate_index: int = 0
    threshold: float = 0.0
    dictionary: saes.Dictionary | None = None  # a latent vector's

    def info(self) -> ResolvedVector:
        return ResolvedVector(
            label=self.label,
            hook=self.hook,
            coefficient=self.coefficient,
            norm=float(self.direction.float().norm()),
            conditional=self.gate is not None,
            dictionary=self.dictionary.ref() if self.dictionary is not None else None,
            gate=self.gate.ref() if isinstance(self.gate, saes.Dictionary) else None,
        )


# --- contrastive vectors -------------------------------------------------------------------
@torch.inference_mode()
def mean_activation(lm: LoadedModel, texts: list[str], hook: str) -> Float[Tensor, " d"]:
    """Mean over texts of each text's mean activation at `hook` over its tokens (BOS left out)."""
    model = lm.model
    means = []
    for text in texts:
        tokens = model.to_tokens(text, prepend_bos=True)[:, : lm.n_ctx]
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == hook)
        means.append(cache[hook][0, 1:].float().mean(0))
    return torch.stack(means).mean(0)


def contrastive(lm: LoadedModel, positive: list[str], negative: list[str], hook: str) -> Tensor:
    """mean activation of `positive` minus that of `negative` at `hook` (kept in the model's
    session)."""
    key, kept = (hook, tuple(positive), tuple(negative)), lm.session.contrastive
    vec = kept.get(key)
    if vec is None:
        vec = mean_activation(lm, positive, hook) - mean_activation(lm, negative, hook)
        kept.put(key, vec)
    return vec


# --- resolving a request -------------------------------------------------------------------
def _check_hook(lm: LoadedModel, hook: str, allowed_extra: str | None = None) -> None:
    ok = hook in lm.model.hook_dict and (hook.endswith(STEERABLE) or hook == allowed_extra)
    if not ok:
        example = f"blocks.0.hook_resid_post … blocks.{lm.n_layers - 1}.hook_resid_post"
        raise EngineError(
            422,
            "bad_hook_point",
            f"Cannot steer at {hook!r}: give a residual stream, attention-out or MLP-out hook "
            f"point of this model ({example}).",
        )


def _latent_direction(lm: LoadedModel, v: SteeringVector) -> tuple[saes.Dictionary, Tensor, str]:
    if v.index is None:
        raise EngineError(422, "latent_required", "A latent steering vector needs its index.")
    source = "transcoder" if v.kind == VectorKind.transcoder_latent else "sae"
    d = saes.resolve(lm, source, v.sae, v.layer)
    saes.check_index(d, v.index)
    name = f"{d.key}:{v.index}"
    return d, d.W_dec[v.index].detach(), name


def _resolve_one(lm: LoadedModel, v: SteeringVector) -> Resolved:
    if v.kind == VectorKind.contrastive:
        if not v.positive or not v.negative:
            raise EngineError(
                422,
                "contrastive_needs_prompts",
                "A contrastive vector needs at least one prompt on each side.",
            )
        hook = v.hook or f"blocks.{lm.n_layers // 2}.hook_resid_post"
        _check_hook(lm, hook)
        d, direction, label = None, contrastive(lm, v.positive, v.negative, hook), "contrastive"
    else:
        d, direction, label = _latent_direction(lm, v)
        hook = v.hook or d.writes
        _check_hook(lm, hook, allowed_extra=d.writes)
    out = Resolved(hook, direction, v.coefficient, v.label or label, dictionary=d)
    if v.condition is not None:
        _gate(lm, out, v.condition)
    return out


@dataclass
class Probe:
    """A probe direction read at a hook point, shaped like a one-latent dictionary."""

    reads: str
    direction: Float[Tensor, " d"]

    def encode(self, x: Float[Tensor, "... d"]) -> Float[Tensor, "... 1"]:
        return (x @ self.direction.to(x.device, x.dtype))[..., None]


def _condition_source(lm: LoadedModel, c: Condition) -> tuple[saes.Dictionary | Probe, int]:
    if c.direction is not None:  # a saved direction (engine/directions.py): its projection
        store = lm.session.directions
        if store is None:
            raise EngineError(409, "no_directions", "No saved directions are open here.")
        d = store.usable(c.direction)
        return Probe(d.hook, torch.tensor(d.vector, device=lm.model.cfg.device)), 0
    if c.probe_hook is not None:
        _check_hook(lm, c.probe_hook)
        if not c.positive or not c.negative:
            raise EngineError(
                422, "probe_needs_prompts", "A probe condition needs prompts on both sides."
            )
        d = contrastive(lm, c.positive, c.negative, c.probe_hook)
        return Probe(c.probe_hook, d / d.norm().clamp_min(1e-12)), 0
    if not c.sae:
        raise EngineError(422, "condition_needs_source", "A condition needs an SAE or a probe.")
    g = saes.for_model(lm).get(c.sae)
    saes.check_index(g, c.index)
    return g, c.index


def _gate(lm: LoadedModel, r: Resolved, c: Condition) -> None:
    g, index = _condition_source(lm, c)
    if hook_order(g.reads) > hook_order(r.hook):
        raise EngineError(
            422,
            "condition_after_hook",
            f"The condition reads {g.reads}, after the vector's hook point {r.hook}: "
            "a condition must be read at or before where the vector is added.",
        )
    r.gate, r.gate_index, r.threshold = g, index, c.threshold


def resolve(lm: LoadedModel, vectors: list[SteeringVector]) -> list[Resolved]:
    return [_resolve_one(lm, v) for v in vectors]


# --- generation ------------------------------------------------------------------------------
def _hooks(resolved: list[Resolved], device: str, dtype: torch.dtype) -> list:
    """One hook per hook point: read the conditions there, then add the vectors."""
    by_hook: dict[str, list[Resolved]] = {}
    for r in resolved:
        by_hook.setdefault(r.hook, []).append(r)
        if r.gate is not None:
            by_hook.setdefault(r.gate.reads, [])
    masks: dict[int, Tensor] = {}

    def make(hook_name: str, here: list[Resolved]):
        gates = [r for r in resolved if r.gate is not None and r.gate.reads == hook_name]
        adds = [(r, (r.coefficient * r.direction).to(device, dtype)) for r in here]

        def hook(act: Tensor, hook) -> Tensor:
            for r in gates:
                lat = r.gate.encode(act)[..., r.gate_index]
                masks[id(r)] = (lat > r.threshold).to(act.dtype)[..., None]
            for r, delta in adds:
                act = act + (delta * masks[id(r)] if r.gate is not None else delta)
            return act

        return hook

    return [(h, make(h, here)) for h, here in by_hook.items()]


def _sample(
    logits: Float[Tensor, " vocab"], gen: torch.Generator, temperature: float, top_k: int | None
) -> Int[Tensor, " 1"]:
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=gen)


@dataclass
class Step:
    step: int
    base: int | None  # None once that continuation has stopped at EOS
    steered: int | None
    kl: float


class Continuation:
    """One sampled continuation on its own TransformerLens KV cache, with its own hooks.

    Baseline and steered continuations run through this same code (batch 1, the same
    shapes), so with every coefficient at 0 they agree bit for bit. TransformerBridge ignores
    a TransformerLens KV cache, so on the bridge each step runs the whole sequence again."""

    def __init__(self, lm: LoadedModel, token_ids: list[int], hooks: list, req: SteerRequest):
        self.model, self.hooks, self.req = lm.model, hooks, req
        device = lm.model.cfg.device
        self.cache = (
            TransformerLensKeyValueCache.init_cache(lm.model.cfg, device, 1)
            if lm.path == "hooked"
            else None
        )
        self.gen = torch.Generator(device=device).manual_seed(req.seed)
        self.eos = lm.model.tokenizer.eos_token_id if req.stop_at_eos else None
        self.next_input = torch.tensor([token_ids], device=device)
        self.done = False

    def step(self) -> tuple[int | None, Float[Tensor, " vocab"] | None]:
        """The next token and the log-probabilities it was sampled from (None once at EOS)."""
        if self.done:
            return None, None
        x = self.next_input
        mask = torch.ones_like(x)
        kv = {} if self.cache is None else {"past_kv_cache": self.cache}
        if self.hooks:
            with self.model.hooks(fwd_hooks=self.hooks):
                logits = self.model(x, attention_mask=mask, **kv)
        else:
            logits = self.model(x, attention_mask=mask, **kv)
        last = logits[0, -1].float()
        token = _sample(last, self.gen, self.req.temperature, self.req.top_k)
        self.next_input = token[None] if self.cache is not None else torch.cat([x, token[None]], 1)
        tid = int(token)
        self.done = tid == self.eos
        return tid, last.log_softmax(-1)


def _baseline_key(token_ids: list[int], req: SteerRequest) -> tuple:
    return (tuple(token_ids), req.max_new_tokens, req.temperature, req.top_k, req.seed,
            req.stop_at_eos)  # fmt: skip


def _kl(p_log: Tensor | None, q_log: Tensor | None) -> float:
    if p_log is None or q_log is None:
        return 0.0
    return float((p_log.exp() * (p_log - q_log)).sum())


@torch.inference_mode()
def generate_pair(
    lm: LoadedModel,
    token_ids: list[int],
    resolved: list[Resolved],
    req: SteerRequest,
    stop: threading.Event | None = None,
    extra_hooks: list | None = None,
) -> Iterator[Step]:
    """Baseline and steered continuations of `token_ids`, a step at a time; the baseline comes
    from the cache when these sampling settings ran before. `extra_hooks` (a saved direction
    added, ablated or capped: engine/interventions.py) run after the vectors'."""
    n_new = min(req.max_new_tokens, lm.n_ctx - len(token_ids))
    key, baselines = _baseline_key(token_ids, req), lm.session.baselines
    cached = baselines.get(key)
    base = None if cached is not None else Continuation(lm, token_ids, [], req)
    steer = None
    if resolved or extra_hooks:
        hooks = _hooks(resolved, lm.model.cfg.device, lm.model.cfg.dtype) + (extra_hooks or [])
        steer = Continuation(lm, token_ids, hooks, req)
    record: list[tuple[int, Tensor]] = []
    with contextlib.ExitStack() as stack:
        if base is None and steer is not None:  # steered only: its hooks stay on throughout
            stack.enter_context(lm.model.hooks(fwd_hooks=steer.hooks))
            steer.hooks = []
        yield from _steps(n_new, base, steer, cached, record, stop)
    if base is not None and (base.done or len(record) == n_new):
        baselines.put(key, record)


def _steps(
    n_new: int,
    base: Continuation | None,
    steer: Continuation | None,
    cached: list[tuple[int, Tensor]] | None,
    record: list[tuple[int, Tensor]],
    stop: threading.Event | None,
) -> Iterator[Step]:
    """Step both continuations (the baseline from `cached` when given), recording it."""
    for step in range(n_new):
        if base is not None:
            b_tok, b_log = base.step()
            if b_tok is not None:
                record.append((b_tok, b_log))
        else:
            b_tok, b_log = cached[step] if step < len(cached) else (None, None)
        s_tok, s_log = steer.step() if steer is not None else (b_tok, b_log)
        if b_tok is None and s_tok is None:
            break
        yield Step(step, b_tok, s_tok, _kl(s_log, b_log))
        if stop is not None and stop.is_set():
            break
