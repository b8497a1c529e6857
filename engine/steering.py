"""Steering: vectors added at hook points while generating, next to an unsteered baseline.

``resolve`` turns a request's vector specs into directions at hook points (an SAE or
transcoder latent's decoder row, or a contrastive mean difference) and checks them.
``generate_pair`` runs the baseline and the steered continuation as one batch of two rows
through TransformerLens's KV cache (``TransformerLensKeyValueCache``, the cache
``HookedTransformer.generate`` uses), steering only row 1: both rows sample with their own
generator seeded alike, so with every coefficient at 0 the two are the same tokens. Each step
yields both tokens and KL(steered || base) of that step's next-token distributions.
A *condition* gates a vector to the positions where an SAE latent (read at or before the
vector's hook point) is above its threshold.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
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
    gate: saes.Dictionary | None = None
    gate_index: int = 0
    threshold: float = 0.0

    def info(self) -> ResolvedVector:
        return ResolvedVector(
            label=self.label,
            hook=self.hook,
            coefficient=self.coefficient,
            norm=float(self.direction.float().norm()),
            conditional=self.gate is not None,
        )


# --- contrastive vectors -------------------------------------------------------------------
_CONTRASTIVE: OrderedDict[tuple, Tensor] = OrderedDict()
_CONTRASTIVE_LOCK = threading.Lock()


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
    """mean activation of `positive` minus that of `negative` at `hook` (cached)."""
    key = (lm.fingerprint, hook, tuple(positive), tuple(negative))
    with _CONTRASTIVE_LOCK:
        if key in _CONTRASTIVE:
            _CONTRASTIVE.move_to_end(key)
            return _CONTRASTIVE[key]
    vec = mean_activation(lm, positive, hook) - mean_activation(lm, negative, hook)
    with _CONTRASTIVE_LOCK:
        _CONTRASTIVE[key] = vec
        while len(_CONTRASTIVE) > 32:
            _CONTRASTIVE.popitem(last=False)
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
        direction, label = contrastive(lm, v.positive, v.negative, hook), "contrastive"
    else:
        d, direction, label = _latent_direction(lm, v)
        hook = v.hook or d.writes
        _check_hook(lm, hook, allowed_extra=d.writes)
    out = Resolved(hook, direction, v.coefficient, v.label or label)
    if v.condition is not None:
        _gate(lm, out, v.condition)
    return out


def _gate(lm: LoadedModel, r: Resolved, c: Condition) -> None:
    g = saes.for_model(lm).get(c.sae)
    saes.check_index(g, c.index)
    if hook_order(g.reads) > hook_order(r.hook):
        raise EngineError(
            422,
            "condition_after_hook",
            f"The condition's SAE reads {g.reads}, after the vector's hook point {r.hook}: "
            "a condition must be read at or before where the vector is added.",
        )
    r.gate, r.gate_index, r.threshold = g, c.index, c.threshold


def resolve(lm: LoadedModel, vectors: list[SteeringVector]) -> list[Resolved]:
    return [_resolve_one(lm, v) for v in vectors]


# --- generation ------------------------------------------------------------------------------
def _hooks(resolved: list[Resolved], device: str, dtype: torch.dtype, row: int) -> list:
    """One hook per hook point: read the conditions there, then add the vectors (row only)."""
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
                lat = r.gate.encode(act[row])[..., r.gate_index]
                masks[id(r)] = (lat > r.threshold).to(act.dtype)[:, None]
            for r, delta in adds:
                act[row] += delta * masks[id(r)] if r.gate is not None else delta
            return act

        return hook

    return [(h, make(h, here)) for h, here in by_hook.items()]


def _sample(
    logits: Float[Tensor, "2 vocab"],
    gens: list[torch.Generator],
    temperature: float,
    top_k: int | None,
) -> Int[Tensor, " 2"]:
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    return torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(gens)])


@dataclass
class Step:
    step: int
    base: int | None  # None once that row has stopped at EOS
    steered: int | None
    kl: float


@torch.inference_mode()
def generate_pair(
    lm: LoadedModel,
    token_ids: list[int],
    resolved: list[Resolved],
    req: SteerRequest,
    stop: threading.Event | None = None,
) -> Iterator[Step]:
    """Baseline (row 0) and steered (row 1) continuations of `token_ids`, a step at a time."""
    model = lm.model
    device = model.cfg.device
    tokens = torch.tensor([token_ids, token_ids], device=device)
    n_new = min(req.max_new_tokens, lm.n_ctx - len(token_ids))
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, 2)
    gens = [torch.Generator(device=device).manual_seed(req.seed) for _ in range(2)]
    eos = model.tokenizer.eos_token_id if req.stop_at_eos else None
    done = torch.zeros(2, dtype=torch.bool, device=device)
    with model.hooks(fwd_hooks=_hooks(resolved, device, model.cfg.dtype, row=1)):
        logits = model(tokens, past_kv_cache=cache, attention_mask=torch.ones_like(tokens))
        for step in range(n_new):
            last = logits[:, -1].float()
            nxt = _sample(last, gens, req.temperature, req.top_k)
            logp = last.log_softmax(-1)
            kl = (logp[1].exp() * (logp[1] - logp[0])).sum()
            ids = torch.where(done, torch.full_like(nxt, eos if eos is not None else 0), nxt)
            base, steered, kl_v = torch.cat([ids.float(), kl[None]]).tolist()
            yield Step(
                step, None if done[0] else int(base), None if done[1] else int(steered), kl_v
            )
            if eos is not None:
                done |= nxt == eos
                if bool(done.all()):
                    return
            if stop is not None and stop.is_set():
                return
            if step + 1 < n_new:
                inp = ids[:, None]
                logits = model(inp, past_kv_cache=cache, attention_mask=torch.ones_like(inp))
