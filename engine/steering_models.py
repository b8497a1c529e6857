"""Side-by-side generation from two models (issue 14): model A and model B continue the same
prompt with the same seed and sampling (each on its own KV cache and generator, through
``steering.Continuation``, with the request's steering vectors resolved on each model), and a
third run of model B reads model A's text, so each step also gives KL(A || B) of the two
models' next-token distributions *along A's generated text* (step 0: after the prompt).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import torch

from engine.errors import EngineError
from engine.loading import LoadedModel
from engine.pairs import tokenizer_mismatch
from engine.schemas.steering import SteeringVector, SteerRequest
from engine.steering import Continuation, Resolved, Step, _hooks, _kl, resolve


def check_pair(lm_a: LoadedModel, lm_b: LoadedModel, slot_a: str, slot_b: str) -> None:
    """Two models generate side by side only when they share a tokenizer (the KL compares
    their distributions over one vocabulary)."""
    why = tokenizer_mismatch(lm_a, lm_b)
    if why:
        raise EngineError(
            422, "not_comparable",
            f"Slots {slot_a!r} and {slot_b!r} cannot generate side by side: {why}.",
            {"reason": why},
        )  # fmt: skip


def resolve_on(
    lm: LoadedModel, vectors: list[SteeringVector], primary: LoadedModel | None
) -> list[Resolved]:
    """`vectors` resolved on `lm`; a latent of an SAE (or a condition's SAE) attached to the
    primary model only is read from it (a fine-tune's slot usually has no SAEs of its own: the
    base's dictionaries read its activations, as ``diff_latents`` does), when the widths match."""
    out = []
    for v in vectors:
        try:
            out += resolve(lm, [v])
        except EngineError as e:
            if e.code != "unknown_sae" or primary is None or primary is lm:
                raise
            if primary.model.cfg.d_model != lm.model.cfg.d_model:
                raise
            out += resolve(primary, [v])
    return out


def _follow(run: Continuation, token: int) -> None:
    """Make `run`'s next input `token` (another continuation's), whatever it sampled."""
    t = torch.tensor([[token]], device=run.next_input.device)
    run.next_input = t if run.cache is not None else torch.cat([run.next_input[:, :-1], t], 1)
    run.done = False


def _run(lm: LoadedModel, ids: list[int], resolved: list[Resolved], req: SteerRequest):
    hooks = _hooks(resolved, lm.model.cfg.device, lm.model.cfg.dtype) if resolved else []
    return Continuation(lm, ids, hooks, req)


@torch.inference_mode()
def generate_models(
    lm_a: LoadedModel,
    lm_b: LoadedModel,
    token_ids: list[int],
    resolved_a: list[Resolved],
    resolved_b: list[Resolved],
    req: SteerRequest,
    stop: threading.Event | None = None,
) -> Iterator[Step]:
    """A's and B's continuations a step at a time (``Step.base``: A's token, ``Step.steered``:
    B's) and KL(A || B) along A's text (0 once A has stopped)."""
    n_new = min(req.max_new_tokens, lm_a.n_ctx - len(token_ids), lm_b.n_ctx - len(token_ids))
    a, b = _run(lm_a, token_ids, resolved_a, req), _run(lm_b, token_ids, resolved_b, req)
    reader = _run(lm_b, token_ids, resolved_b, req)  # model B on A's text
    for step in range(n_new):
        a_tok, a_log = a.step()
        b_tok, b_log = b.step()
        r_log = None
        if a_tok is not None:
            _, r_log = reader.step()
            _follow(reader, a_tok)
        if a_tok is None and b_tok is None:
            break
        yield Step(step, a_tok, b_tok, _kl(a_log, r_log))
        if stop is not None and stop.is_set():
            break
