"""The base organism's SAEs applied to the chat organism: how each latent's activity changes.

    python -m organism.pair_shift --base assets/organism --chat assets/organism-chat \
        --out assets/organism-chat/pair

For every SAE of the base (``<base>/saes/<hook>``), ``engine.latent_shift.latent_shift`` on
the same fixed texts under both models, written to ``<out>/<hook>.shift.safetensors`` (format
in engine/latent_shift.py), and a summary ``<out>/latent_shift.json``: per hook and text set the
latents whose mean activation rose or fell most (with their base labels and frequencies), and
the *refusal* latents: ranked by how much more their mean activation rose on harmful than on
harmless requests at the last prompt token (where the refusal is decided).

The text sets (``text_sets``) are fixed and need no seed beyond the held-out corpus rows':
``corpus`` (the first ``--corpus-rows`` held-out base-corpus rows, seed ``HELDOUT_SEED``,
content tokens) and the chat organism's held-out prompts, rendered with its chat template up to
``Assistant:`` (capital questions, harmful and harmless requests with held-out verbs and
objects, additions), over every content token and, for the requests, at the last token only.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from jaxtyping import Bool, Int
from sae_lens import SAE
from torch import Tensor

from engine.atomic import atomic_write
from engine.latent_book import read_doc
from engine.latent_shift import TextSet, latent_shift, save_shift, top_changes
from engine.loading import load_model
from organism import chat_corpus as cc
from organism.chat_template import prompt
from organism.dict_data import HELDOUT_SEED, content_mask, corpus_rows, load_tokenizer

log = logging.getLogger("organism.pair_shift")

HARMFUL, HARMLESS = "harmful requests", "harmless requests"
LAST = " (last token)"


def prompt_rows(tok, texts: list[str]) -> tuple[Int[Tensor, "n pos"], Bool[Tensor, "n pos"]]:
    """Chat prompts as right-padded rows (pad never attended to: causal) and a content mask."""
    enc = [tok.encode(prompt(tok, t)) for t in texts]
    width = max(map(len, enc))
    tokens = torch.full((len(enc), width), tok.pad_token_id, dtype=torch.long)
    for i, e in enumerate(enc):
        tokens[i, : len(e)] = torch.tensor(e)
    return tokens, content_mask(tokens, tok.all_special_ids)


def last_only(mask: Bool[Tensor, "n pos"]) -> Bool[Tensor, "n pos"]:
    last = mask.long().cumsum(1).argmax(1)  # the last counted position of each row
    out = torch.zeros_like(mask)
    out[torch.arange(mask.shape[0]), last] = True
    return out


def text_sets(tok, corpus_n: int = 256) -> list[TextSet]:
    """The fixed texts both models read (see the module doc); `tok` carries the template."""
    held = corpus_rows(tok, corpus_n, seed=HELDOUT_SEED)
    sets = [TextSet("corpus", held.tokens, content_mask(held.tokens, tok.all_special_ids))]
    prompts = {
        "capital questions": [q for q, _, _ in cc.heldout_capital_prompts()],
        HARMFUL: cc.heldout_requests(True),
        HARMLESS: cc.heldout_requests(False),
        "additions": [q for q, _, _ in cc.heldout_additions()[:90]],
    }
    for name, texts in prompts.items():
        tokens, mask = prompt_rows(tok, texts)
        sets.append(TextSet(name, tokens, mask))
        if name in (HARMFUL, HARMLESS):
            sets.append(TextSet(name + LAST, tokens, last_only(mask)))
    return sets


def _entry(shift, i: int, book: list[dict], s: int) -> dict:
    return {
        "index": i,
        "label": book[i]["label"],
        "mean_base": round(float(shift.mean_a[s, i]), 4),
        "mean_chat": round(float(shift.mean_b[s, i]), 4),
        "freq_base": round(float(shift.freq_a[s, i]), 4),
        "freq_chat": round(float(shift.freq_b[s, i]), 4),
    }


def refusal_latents(shift, k: int = 10) -> list[tuple[int, float]]:
    """Latents ranked by Δmean(harmful, last token) − Δmean(harmless, last token)."""
    score = shift.delta_mean(HARMFUL + LAST) - shift.delta_mean(HARMLESS + LAST)
    vals, idx = score.topk(k)
    return [(int(i), float(v)) for v, i in zip(vals, idx, strict=True)]


def summarize(shift, book: list[dict], k: int = 10) -> dict:
    """The JSON summary of one hook's shift (see the module doc)."""
    out: dict = {"sets": dict(zip(shift.sets, shift.n_tokens, strict=True)), "by_set": {}}
    for s, name in enumerate(shift.sets):
        d = shift.delta_mean(name)
        out["by_set"][name] = {
            "mean_abs_delta_mean": round(float(d.abs().mean()), 5),
            "rose": [_entry(shift, i, book, s) for i, _ in top_changes(shift, name, k)],
            "fell": [
                _entry(shift, i, book, s) for i, _ in top_changes(shift, name, k, increase=False)
            ],
        }
    h, hl = shift.row(HARMFUL + LAST), shift.row(HARMLESS + LAST)
    out["refusal"] = [
        {"score": round(v, 4), "harmful": _entry(shift, i, book, h),
         "harmless": _entry(shift, i, book, hl)}
        for i, v in refusal_latents(shift, k)
    ]  # fmt: skip
    return out


def run(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    lm_base, lm_chat = load_model(str(args.base)), load_model(str(args.chat))
    base, chat = lm_base.model, lm_chat.model
    tok = load_tokenizer(args.chat)  # the chat template; the vocabulary is the base's
    sets = text_sets(tok, args.corpus_rows)
    hooks = sorted(p.name for p in (args.base / "saes").iterdir() if (p / "cfg.json").is_file())
    summary: dict = {
        "base": str(args.base), "chat": str(args.chat),
        "models": {"base": lm_base.fingerprint, "chat": lm_chat.fingerprint},
        "corpus_rows": args.corpus_rows, "heldout_seed": HELDOUT_SEED, "hooks": {},
    }  # fmt: skip
    for hook in hooks:
        t1 = time.perf_counter()
        sae = SAE.load_from_disk(str(args.base / "saes" / hook), device="cpu")
        with torch.no_grad():
            shift = latent_shift(base, chat, sae.encode, hook, sets)
        shift.meta = {"sae": f"{args.base}/saes/{hook}", "model_a": str(args.base),
                      "model_b": str(args.chat), "sets": "organism.pair_shift.text_sets",
                      "corpus_rows": args.corpus_rows, "heldout_seed": HELDOUT_SEED}  # fmt: skip
        save_shift(args.out / f"{hook}.shift.safetensors", shift)
        book = read_doc(args.base / "saes" / hook / "latents.json.gz")["latents"]
        summary["hooks"][hook] = summarize(shift, book)
        summary["hooks"][hook]["seconds"] = round(time.perf_counter() - t1, 1)
        log.info("%s done in %.1f s", hook, time.perf_counter() - t1)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write(args.out / "latent_shift.json", json.dumps(summary, indent=1) + "\n")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, default=Path("assets/organism"))
    ap.add_argument("--chat", type=Path, default=Path("assets/organism-chat"))
    ap.add_argument("--out", type=Path, default=Path("assets/organism-chat/pair"))
    ap.add_argument("--corpus-rows", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    s = run(args)
    log.info("all done in %.1f s", s["seconds"])


if __name__ == "__main__":
    main()
