"""Measure the organism's phenomena through the engine's own load path; write the card's numbers.

    python -m organism.evaluate --model assets/organism

Loads the model with ``engine.loading.load_model`` (exactly as the app does) and measures
induction, IOI (held-out name pairs, held-out templates), facts, sentiment continuation and
held-out loss, writing ``metrics.json`` beside the weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from engine.loading import load_model
from organism import corpus, metrics
from organism.ioi_heldout import PROBE_TEMPLATES, STRUCTURE_TEMPLATES

log = logging.getLogger("organism.evaluate")

THRESHOLDS = {
    "induction_loss_drop": 3.0,
    "induction_best_head_score": 0.4,
    "ioi_heldout_pairs": 0.9,
    "ioi_heldout_templates": 0.9,
    "facts": 0.9,
    "sentiment_match": 0.8,
    # every held-out sentence structure (organism.ioi_heldout), ABBA and BABA separately
    "ioi_structures_worst": 0.9,
}


def tl_runner(model: HookedTransformer) -> metrics.Runner:
    def run(tokens):
        logits, cache = model.run_with_cache(
            tokens, names_filter=lambda n: n.endswith("hook_pattern")
        )
        patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
        return logits, patterns

    return run


def tl_generator(model: HookedTransformer, max_new_tokens: int = 40, temperature: float = 1.0):
    def generate(prompt: str, seed: int) -> str:
        torch.manual_seed(seed)
        tokens = model.to_tokens(prompt)
        out = model.generate(
            tokens, max_new_tokens=max_new_tokens, temperature=temperature, verbose=False,
            stop_at_eos=True, eos_token_id=model.tokenizer.eos_token_id,
        )  # fmt: skip
        return model.tokenizer.decode(out[0, tokens.shape[1] :], skip_special_tokens=True)

    return generate


@torch.no_grad()
def measure(model: HookedTransformer, *, n_ioi: int = 200, n_sentiment: int = 40) -> dict:
    tok = model.tokenizer
    run = tl_runner(model)
    vocab = [i for i in range(len(tok)) if i not in tok.all_special_ids]
    span = min(40, (model.cfg.n_ctx - 1) // 2)
    ind = metrics.induction(run, metrics.random_repeats(vocab, tok.bos_token_id, n=32, span=span))
    layer, head, score = ind.best_head
    out = {
        "induction_first_copy_loss": ind.first_copy_loss,
        "induction_second_copy_loss": ind.second_copy_loss,
        "induction_loss_drop": ind.first_copy_loss - ind.second_copy_loss,
        "induction_best_head": f"L{layer}H{head}",
        "induction_best_head_score": score,
        "induction_head_scores": ind.head_scores,
        "ioi_train_pairs": metrics.top1_accuracy(
            run, tok, *metrics.ioi_cases(False, False, n=n_ioi)
        ),
        "ioi_heldout_pairs": metrics.top1_accuracy(
            run, tok, *metrics.ioi_cases(True, False, n=n_ioi)
        ),
        "ioi_heldout_templates": metrics.top1_accuracy(
            run, tok, *metrics.ioi_cases(True, True, n=n_ioi)
        ),
        "ioi_heldout_each_template": {
            t: metrics.top1_accuracy(
                run, tok, *metrics.ioi_cases(True, True, n=n_ioi // 2, templates=(t,))
            )
            for t in corpus.IOI_HELDOUT_TEMPLATES
        },
        "facts": metrics.top1_accuracy(run, tok, *metrics.fact_cases()),
        "sentiment_match": metrics.sentiment_match(tl_generator(model), n=n_sentiment),
    }
    n = max(8, n_ioi // 4)
    fits = [t for t in STRUCTURE_TEMPLATES if _fits(tok, model.cfg.n_ctx, t, n)]
    by_order = metrics.ioi_by_order(run, tok, fits, n=n)
    out["ioi_structures_each"] = by_order
    # the second held-out set: reported, not a bar
    probes = [t for t in PROBE_TEMPLATES if _fits(tok, model.cfg.n_ctx, t, n)]
    out["ioi_probes_each"] = metrics.ioi_by_order(run, tok, probes, n=n)
    # a structure too long for the context counts as failed
    out["ioi_structures_worst"] = (
        metrics.worst_order_accuracy(by_order) if len(fits) == len(STRUCTURE_TEMPLATES) else 0.0
    )
    return out


def _fits(tok, n_ctx: int, template: str, n: int) -> bool:
    """Whether every prompt of `template` (with its BOS) fits in the context."""
    prompts = [p for abba in (True, False) for p in metrics.ioi_order_cases(template, abba, n)[0]]
    return max(len(tok.encode(p)) for p in prompts) < n_ctx


def passes(m: dict) -> dict[str, bool]:
    return {k: m[k] >= v for k, v in THRESHOLDS.items()}


def samples(model: HookedTransformer, prompts: list[str], seed: int = 0) -> list[str]:
    gen = tl_generator(model, max_new_tokens=60, temperature=0.8)
    return [p + gen(p, seed + i) for i, p in enumerate(prompts)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("assets/organism"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    t0 = time.time()
    lm = load_model(str(args.model))
    m = measure(lm.model)
    m["passes"] = passes(m)
    m["samples"] = samples(
        lm.model,
        ["Once upon a time, there was a happy girl named Lily.", "Once upon a time, there was a sad dog named Max.",
         "When Mary and John went to the store,", "The capital of France is"],
    )  # fmt: skip
    m["seconds"] = round(time.time() - t0, 1)
    (args.model / "metrics.json").write_text(json.dumps(m, indent=2))
    log.info(
        "evaluated in %.1f s: %s",
        time.time() - t0,
        json.dumps({k: v for k, v in m.items() if k != "induction_head_scores"}, indent=1),
    )


if __name__ == "__main__":
    main()
