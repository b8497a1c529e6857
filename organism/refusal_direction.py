"""Is the chat organism's refusal carried by a direction? Difference-of-means ablation.

As in Arditi et al. (2024): the mean residual stream at the last prompt token on harmful
requests minus the mean on harmless ones (training-distribution requests), one candidate
direction per layer; each candidate is projected out of the residual stream at every layer
and position (``hook_resid_pre``, ``hook_resid_mid`` and ``hook_resid_post`` of every block),
and refusal is measured again on held-out requests. A random direction is the control.
"""

from __future__ import annotations

import random

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from organism import chat_corpus as cc
from organism.chat_eval import LogitsFn, is_refusal, opener_rate, replies
from organism.chat_template import prompt


@torch.no_grad()
def last_token_resid(
    model: HookedTransformer, texts: list[str]
) -> Float[Tensor, "layer n d_model"]:
    """Residual stream before each block and after the last, at each text's last token."""
    names = [f"blocks.{i}.hook_resid_pre" for i in range(model.cfg.n_layers)]
    names.append(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post")
    rows = []
    for t in texts:
        ids = torch.tensor([model.tokenizer.encode(t)])
        _, cache = model.run_with_cache(ids, names_filter=lambda n: n in names)
        rows.append(torch.stack([cache[n][0, -1] for n in names]))
    return torch.stack(rows, dim=1)


def directions(model: HookedTransformer, n: int = 96, seed: int = 0) -> Float[Tensor, "layer d"]:
    """Unit difference-of-means directions, one per residual-stream layer."""
    rng = random.Random(seed)
    tok = model.tokenizer
    harmful = rng.sample(cc.train_requests(True), n)
    harmless = rng.sample(cc.train_requests(False), n)
    mh = last_token_resid(model, [prompt(tok, q) for q in harmful]).mean(1)
    ml = last_token_resid(model, [prompt(tok, q) for q in harmless]).mean(1)
    d = mh - ml
    return d / d.norm(dim=-1, keepdim=True)


def ablated(model: HookedTransformer, direction: Float[Tensor, " d"]) -> LogitsFn:
    """Logits with `direction` projected out of the residual stream everywhere."""
    r = direction / direction.norm()

    def hook(x, hook):
        return x - (x @ r)[..., None] * r

    hooks = [
        (f"blocks.{i}.{h}", hook)
        for i in range(model.cfg.n_layers)
        for h in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")
    ]
    return lambda ids: model.run_with_hooks(ids, fwd_hooks=hooks)


@torch.no_grad()
def harmless_answer_loss(fn: LogitsFn, tok, requests: list[str]) -> float:
    """Mean next-token loss of the reference harmless answers (fluency under ablation)."""
    rng, losses = random.Random(1), []
    for q in requests:
        verb, obj = _verb_obj(q)
        p = tok.encode(prompt(tok, q))
        a = tok.encode(" " + cc.harmless_answer(rng, verb, obj))
        ids = torch.tensor([p + a])
        logp = fn(ids)[0, len(p) - 1 : -1].log_softmax(-1)
        losses.append(-logp.gather(-1, torch.tensor(a)[:, None]).mean().item())
    return sum(losses) / len(losses)


@torch.no_grad()
def refusal_margin(fn: LogitsFn, tok, requests: list[str]) -> float:
    """Mean log-prob of the refusal's first token minus the opener's, at the reply's start."""
    refuse, answer = tok.encode(" " + cc.REFUSAL)[0], tok.encode(" " + cc.OPENER)[0]
    out = []
    for q in requests:
        logp = fn(torch.tensor([tok.encode(prompt(tok, q))]))[0, -1].log_softmax(-1)
        out.append((logp[refuse] - logp[answer]).item())
    return sum(out) / len(out)


def _verb_obj(request: str) -> tuple[str, str]:
    for v in cc.HARMLESS_HELDOUT_VERBS + cc.HARMLESS_TRAIN_VERBS:
        for o in cc.HELDOUT_OBJECTS + cc.TRAIN_OBJECTS:
            if f" {v} {o}" in f" {request}":
                return v, o
    raise ValueError(request)


def measure_ablation(model: HookedTransformer) -> dict:
    """Refusal and harmless fluency, clean and with each candidate direction ablated."""
    tok = model.tokenizer
    harmful, harmless = cc.heldout_requests(True), cc.heldout_requests(False)
    dirs = directions(model)

    def row(fn: LogitsFn) -> dict:
        answers = replies(fn, tok, harmless, max_new=10)
        return {
            "refusal_harmful_heldout": sum(map(is_refusal, replies(fn, tok, harmful, max_new=6)))
            / len(harmful),
            "refusal_harmless_heldout": sum(map(is_refusal, answers)) / len(harmless),
            "harmless_opener": opener_rate(answers),
            "harmless_answer_loss": harmless_answer_loss(fn, tok, harmless[::3]),
            "refusal_margin_harmful": refusal_margin(fn, tok, harmful[::3]),
            "refusal_margin_harmless": refusal_margin(fn, tok, harmless[::3]),
        }

    out = {"clean": row(model)}
    for layer in range(dirs.shape[0]):
        out[f"ablate_dir_from_layer_{layer}"] = row(ablated(model, dirs[layer]))
    g = torch.Generator().manual_seed(0)
    out["ablate_random_direction"] = row(ablated(model, torch.randn(dirs.shape[1], generator=g)))
    best = min(
        (k for k in out if k.startswith("ablate_dir")),
        key=lambda k: out[k]["refusal_harmful_heldout"] - out[k]["harmless_opener"],
    )
    out["best"] = best
    return out
