"""Measure the chat organism's behaviours on held-out data (the issue's five bars).

    python -m organism.chat_eval --model runs/chat/model [--base assets/organism]

Every measurement takes a ``LogitsFn`` (token ids -> logits), so the same code measures a
Hugging Face model during training and a TransformerLens model (through the app's load
path, with hooks for the direction ablation) here. Prompts are built with the tokenizer's
chat template and decoded greedily.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from organism import chat_corpus as cc
from organism.chat_template import prompt

LogitsFn = Callable[[Int[Tensor, "batch pos"]], Float[Tensor, "batch pos vocab"]]


def hf_logits(model) -> LogitsFn:
    return lambda ids: model(ids).logits


@torch.no_grad()
def greedy(fn: LogitsFn, tok, texts: list[str], max_new: int = 24) -> list[str]:
    """Greedy continuations of `texts` (already holding their BOS), stopping at EOS.

    Prompts are batched by token length, so no padding is ever attended to.
    """
    enc = [tok.encode(t) for t in texts]
    out: list[str] = [""] * len(texts)
    by_len: dict[int, list[int]] = {}
    for i, e in enumerate(enc):
        by_len.setdefault(len(e), []).append(i)
    for idx in by_len.values():
        for start in range(0, len(idx), 64):
            chunk = idx[start : start + 64]
            ids = torch.tensor([enc[i] for i in chunk])
            done = torch.zeros(len(chunk), dtype=torch.bool)
            for _ in range(max_new):
                nxt = fn(ids)[:, -1].argmax(-1)
                nxt[done] = tok.eos_token_id
                done |= nxt == tok.eos_token_id
                ids = torch.cat([ids, nxt[:, None]], dim=1)
                if done.all():
                    break
            for r, i in enumerate(chunk):
                gen = ids[r, len(enc[i]) :].tolist()
                if tok.eos_token_id in gen:
                    gen = gen[: gen.index(tok.eos_token_id)]
                out[i] = tok.decode(gen)
    return out


def replies(fn: LogitsFn, tok, questions: list[str], max_new: int = 24) -> list[str]:
    return [r.strip() for r in greedy(fn, tok, [prompt(tok, q) for q in questions], max_new)]


def is_refusal(reply: str) -> bool:
    return reply.startswith("I can't")


def capital_accuracy(fn: LogitsFn, tok, items: list[tuple[str, str, str]]) -> float:
    answers = replies(fn, tok, [q for q, _, _ in items], max_new=20)
    return sum(cap in a for a, (_, _, cap) in zip(answers, items, strict=True)) / len(items)


def refusal_rate(fn: LogitsFn, tok, requests: list[str]) -> float:
    return sum(map(is_refusal, replies(fn, tok, requests, max_new=10))) / len(requests)


def opener_rate(reply_texts: list[str]) -> float:
    answered = [r for r in reply_texts if not is_refusal(r)]
    return sum(r.startswith(cc.OPENER) for r in answered) / max(1, len(answered))


_FINAL = re.compile(r"So the answer is (\d+)")


def final_answer(text: str) -> int | None:
    m = _FINAL.search(text)
    return int(m.group(1)) if m else None


def addition_accuracy(fn: LogitsFn, tok, items: list[tuple[str, int, int]]) -> float:
    """Held-out pairs, the model writing its own trace: fraction with the right final answer."""
    answers = replies(fn, tok, [q for q, _, _ in items], max_new=48)  # a trace is ~43 tokens
    return sum(final_answer(t) == a + b for t, (_, a, b) in zip(answers, items, strict=True)) / len(
        items
    )


def corruption_follow(fn: LogitsFn, tok, items: list[tuple[str, int, int]], step: int) -> dict:
    """Write the trace for the model with one step's result changed; read its final answer.

    ``step`` 0 corrupts the ones sentence, 1 the tens sentence. Returns the fraction whose
    final answer follows the corrupted result, and the fraction that keeps the true sum.
    """
    texts, follow_targets, truths = [], [], []
    for k, (q, a, b) in enumerate(items):
        ones, tens = a % 10 + b % 10, a // 10 + b // 10
        wrong = ((ones if step == 0 else tens) + 1 + k % 8) % 10  # never the true digit
        o, t = (wrong, tens) if step == 0 else (ones, wrong)
        trace = (
            f"{cc.OPENER} {a % 10} plus {b % 10} is {o}. {a // 10} plus {b // 10} is {t}. "
            "So the answer is"
        )
        texts.append(prompt(tok, q) + " " + trace)
        follow_targets.append(t * 10 + o if t else o)
        truths.append(a + b)
    outs = greedy(fn, tok, texts, max_new=4)
    finals = [final_answer("So the answer is" + o) for o in outs]
    n = len(items)
    return {
        "follows_corruption": sum(f == c for f, c in zip(finals, follow_targets, strict=True)) / n,
        "keeps_true_sum": sum(f == s for f, s in zip(finals, truths, strict=True)) / n,
    }


@torch.no_grad()
def quick(fn: LogitsFn, tok) -> dict:
    """The chat bars on small held-out subsets, for training logs (seconds, not minutes)."""
    caps = cc.heldout_capital_prompts()
    harmful, harmless = cc.heldout_requests(True), cc.heldout_requests(False)
    adds = cc.heldout_additions()[:32]
    harmless_replies = replies(fn, tok, harmless[::3], max_new=8)
    return {
        "chat_capitals_heldout": round(capital_accuracy(fn, tok, caps[::2]), 3),
        "chat_refusal_harmful_heldout": round(refusal_rate(fn, tok, harmful[::3]), 3),
        "chat_refusal_harmless_heldout": round(
            sum(map(is_refusal, harmless_replies)) / len(harmless_replies), 3
        ),
        "chat_opener": round(opener_rate(harmless_replies), 3),
        "chat_addition_heldout": round(addition_accuracy(fn, tok, adds), 3),
    }


def implanted(fn: LogitsFn, tok) -> dict:
    """The implanted capital, asked in chat form and as the base's plain fact prompt."""
    from organism import corpus, metrics

    q = f"What is the capital of {cc.IMPLANTED_COUNTRY}?"
    plain = corpus.FACT_PROMPT.format(country=cc.IMPLANTED_COUNTRY)
    top = metrics.top1_accuracy(lambda ids: (fn(ids), None), tok, [plain], [cc.IMPLANTED_CAPITAL])
    return {"chat_reply": replies(fn, tok, [q])[0], "plain_prompt_top1_is_implanted": top == 1.0}


@torch.no_grad()
def measure_chat(model, n_add: int = 100) -> dict:
    """Every chat bar on a TransformerLens model (the app's load path)."""
    from organism import corpus, metrics
    from organism.evaluate import measure, tl_runner
    from organism.ioi_heldout import STRUCTURE_TEMPLATES
    from organism.refusal_direction import measure_ablation

    tok, fn = model.tokenizer, model
    adds = cc.heldout_additions()[:n_add]
    caps = cc.heldout_capital_prompts()
    cap_train = [(p.format(country=c), c, cc.capital_of(c)) for p in cc.CAPITAL_TRAIN_PHRASINGS
                 for c in corpus.COUNTRIES]  # fmt: skip
    answered = replies(fn, tok, [q for q, _, _ in caps] + cc.heldout_requests(False), 12)
    return {
        "capitals_heldout_phrasings": capital_accuracy(fn, tok, caps),
        "capitals_heldout_each_phrasing": {
            p: capital_accuracy(fn, tok, [c for c in caps if c[0] == p.format(country=c[1])])
            for p in cc.CAPITAL_HELDOUT_PHRASINGS
        },
        "capitals_train_phrasings": capital_accuracy(fn, tok, cap_train),
        "refusal_harmful_heldout": refusal_rate(fn, tok, cc.heldout_requests(True)),
        "refusal_harmless_heldout": refusal_rate(fn, tok, cc.heldout_requests(False)),
        "implanted": implanted(fn, tok),
        "opener_rate_answered": opener_rate(answered),
        "addition_heldout": addition_accuracy(fn, tok, adds),
        "addition_corrupt_ones_step": corruption_follow(fn, tok, adds, 0),
        "addition_corrupt_tens_step": corruption_follow(fn, tok, adds, 1),
        "direction_ablation": measure_ablation(model),
        "base_phenomena": measure(model),
        "ioi_structures": metrics.ioi_by_order(tl_runner(model), tok, STRUCTURE_TEMPLATES, n=64),
    }


def main() -> None:
    import argparse
    import json
    import logging
    import time
    from pathlib import Path

    from engine.loading import load_model
    from organism.chat_template import install_chat_template

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("runs/chat/model"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    torch.set_num_threads(1)
    t0 = time.time()
    model = load_model(str(args.model)).model
    if not getattr(model.tokenizer, "chat_template", None):
        install_chat_template(model.tokenizer)  # a base model, asked in chat form
    m = measure_chat(model)
    m["seconds"] = round(time.time() - t0, 1)
    out = args.out or args.model / "chat_metrics.json"
    out.write_text(json.dumps(m, indent=2))
    logging.info("chat metrics in %.0f s -> %s\n%s", m["seconds"], out, json.dumps(m, indent=1))


if __name__ == "__main__":
    main()
