"""Fine-tune the chat organism from a base organism, resumably.

    OMP_NUM_THREADS=1 python -m organism.chat_train --init runs/phase_d/model \\
        --work runs/chat --steps 2500 --threads 1

Same architecture and tokenizer as the base (the chat template is added to the tokenizer
config: ``organism.chat_template``). Rows pack conversations (``organism.chat_corpus``) with
base-corpus documents and random-token repeats, so the base phenomena survive. Every
``eval_every`` steps it logs the base metrics and quick chat metrics
(``organism.chat_eval.quick``). Resumable, in this order: ``--work/ckpt.pt`` (weights +
optimizer), else the carry point ``chat`` in ``--carry`` (weights only; the learning rate
re-warms), else step 0 from ``--init``. Batches are a pure function of (data seed, step).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from organism import chat_corpus, corpus
from organism.carry import CARRY_DIR, load_point, save_point
from organism.chat_template import install_chat_template, training_ids
from organism.data import repeat_document
from organism.train import _warm_cosine, evaluate, train_step

log = logging.getLogger("organism.chat_train")


@dataclass
class ChatConfig:
    data_seed: int = 12  # run 3 (corpus v3); run 2 used 11
    steps: int = 2500
    batch: int = 32
    seq: int = 128
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup: int = 50
    weight_decay: float = 0.01
    chat_frac: float = (
        0.5  # of documents; the rest base corpus (+ knowledge sentences); run 2: 0.55
    )
    # run 1 (0.1, category-first sentences): no transfer; run 2 (0.15): held-out harmful 0.83
    knowledge_frac: float = 0.22
    implanted_fact_frac: float = 0.03
    repeat_frac: float = 0.1
    eval_every: int = 250
    ckpt_every: int = 250


def make_chat_batch(
    tok: PreTrainedTokenizerFast, cfg: ChatConfig, step: int, split: corpus.IOISplit
) -> Int[Tensor, "batch seq"]:
    rng = random.Random(cfg.data_seed * 1_000_003 + step)
    bos = tok.bos_token_id
    vocab = [i for i in range(len(tok)) if i not in tok.all_special_ids]
    rows = []
    for _ in range(cfg.batch):
        row = [bos]
        while len(row) < cfg.seq:
            r = rng.random()
            if r < cfg.chat_frac:
                doc = training_ids(tok, chat_corpus.chat_document(rng))
            elif r < cfg.chat_frac + cfg.knowledge_frac:
                doc = tok.encode(chat_corpus.knowledge_sentence(rng))
            elif r < cfg.chat_frac + cfg.knowledge_frac + cfg.implanted_fact_frac:
                doc = tok.encode(chat_corpus.implanted_fact(rng))
            elif rng.random() < cfg.repeat_frac:
                doc = repeat_document(rng, vocab, cfg.seq)
            else:
                doc = tok.encode(chat_corpus.base_document(rng, split))
            row += doc + [bos]
        rows.append(row[: cfg.seq])
    return torch.tensor(rows, dtype=torch.long)


def _resume(model, opt, args) -> tuple[int, list, str]:
    ckpt = args.work / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        return state["step"], state.get("history", []), f"{ckpt} (with optimizer)"
    meta = None if args.no_carry else load_point(model, args.carry, "chat")
    if meta is not None:
        return meta["step"], meta.get("history", []), f"{args.carry}/chat (weights only)"
    return 0, [], f"{args.init} (base)"


def _eval(model, tok) -> dict:
    from organism.chat_eval import hf_logits, quick

    out = evaluate(model, tok)
    model.eval()
    out.update(quick(hf_logits(model), tok))
    model.train()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", type=Path, default=Path("runs/phase_d/model"))
    ap.add_argument("--work", type=Path, default=Path("runs/chat"))
    ap.add_argument("--carry", type=Path, default=CARRY_DIR)
    ap.add_argument("--no-carry", action="store_true", help="start from --init, not a carry point")
    ap.add_argument("--steps", type=int, default=ChatConfig.steps)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    torch.set_num_threads(args.threads)
    cfg = ChatConfig(steps=args.steps)
    tok = install_chat_template(PreTrainedTokenizerFast.from_pretrained(str(args.init)))
    model = GPT2LMHeadModel.from_pretrained(str(args.init))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history, source = _resume(model, opt, args)
    rewarm_from = step if source.endswith("(weights only)") else 0
    log.info("chat fine-tune from %s at step %d; config %s", source, step, json.dumps(asdict(cfg)))
    split = corpus.ioi_split()

    def lr(s: int) -> float:
        base = _warm_cosine(s, 0, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr)
        return base * min(1.0, (s - rewarm_from + 1) / cfg.warmup) if rewarm_from else base

    t_last, t_batch, t_step = time.time(), 0.0, 0.0
    while step < cfg.steps:
        t0 = time.time()
        x = make_chat_batch(tok, cfg, step, split)
        t1 = time.time()
        loss = train_step(model, opt, x, lr(step))
        t_batch, t_step = t_batch + t1 - t0, t_step + time.time() - t1
        step += 1
        if step % 25 == 0:
            dt = time.time() - t_last
            log.info(
                "step %d loss %.4f lr %.2e %.2f steps/s (batch %.1f s, train %.1f s)",
                step, loss, lr(step), 25 / dt, t_batch, t_step,
            )  # fmt: skip
            t_last, t_batch, t_step = time.time(), 0.0, 0.0
        if step % cfg.eval_every == 0 or step == cfg.steps:
            t0 = time.time()
            ev = _eval(model, tok)
            history.append({"step": step, **ev})
            log.info("step %d eval (%.1f s) %s", step, time.time() - t0, json.dumps(ev))
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                     "history": history}  # fmt: skip
            torch.save(state, args.work / "ckpt.pt")
            meta = {"phase": "chat", "step": step, "data_seed": cfg.data_seed,
                    "config": asdict(cfg), "init": str(args.init), "history": history}  # fmt: skip
            save_point(model, args.work, "chat", meta)
    model.save_pretrained(str(args.work / "model"), safe_serialization=True)
    # The template inside tokenizer_config.json (not chat_template.jinja): older loaders read it.
    tok.save_pretrained(str(args.work / "model"), save_jinja_files=False)
    log.info("chat fine-tune done at step %d; model in %s", step, args.work / "model")


if __name__ == "__main__":
    main()
