"""Phase D: continue training the phases A-C base so IOI holds on new sentence structures.

    OMP_NUM_THREADS=1 python -m organism.phase_d --work runs/phase_d --steps 2500 --threads 1

Resumed from the phases A-C model (``--init``; shipped as the base until phase E replaced
it), with the base corpus mixed in so induction,
facts and sentiment survive; IOI sentences mostly from generated templates, most of those
from the structural grammar (``organism.ioi_grammar``), with made-up words in slots. Every
``eval_every`` steps it logs the base metrics (the best induction head is found afresh each
time, never assumed) and top-1 IOI accuracy per held-out structure, ABBA and BABA orders
separately (``organism.ioi_heldout``).

Resumable, in this order: ``--work/ckpt.pt`` (weights + optimizer), else the carry point
``phase_d`` in ``--carry`` (weights only: the learning rate re-warms over ``warmup`` steps),
else step 0 from ``--init``. Batches are a pure function of (data seed, step).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from organism import corpus, metrics
from organism.carry import CARRY_DIR, load_point, save_point
from organism.data import make_batch
from organism.ioi_grammar import StructuralMix
from organism.ioi_heldout import STRUCTURE_TEMPLATES
from organism.train import _warm_cosine, evaluate, hf_runner, train_step

log = logging.getLogger("organism.phase_d")


@dataclass
class PhaseDConfig:
    data_seed: int = 4  # phases A-C used seed 0: new batches
    steps: int = 2500
    batch: int = 32
    seq: int = 128
    lr: float = 3e-4
    min_lr: float = 5e-5
    warmup: int = 50
    weight_decay: float = 0.01
    doc_weights: tuple[float, float, float] = (0.3, 0.5, 0.2)  # story, ioi, fact
    repeat_frac: float = 0.2
    periodic_frac: float = 0.05
    generated_ioi_frac: float = 0.85
    structural: float = 0.7  # of generated templates; the rest from phase C's grammar
    pseudo_word_frac: float = 0.25
    # From ``long_from``, this share of structural templates is the long form (scene
    # sentences, the names, filler sentences, the giving): at steps 250-750 the held-out
    # "The {place} was quiet. X and Y waited by the door. Nobody said a word. B showed..."
    # stayed at 0.28-0.66 in ABBA order, and only failed with sentences on both sides.
    long_from: int = 1000
    long_frac: float = 0.3
    # From ``pseudo_lead_from``, a made-up opener before the names (StructuralMix): at step
    # 1500 the card's "Before X and Y went home ..." (rare pieces B·e·f·ore) fell to 0.60.
    pseudo_lead_from: int = 1500
    pseudo_lead_frac: float = 0.25
    eval_every: int = 250
    ckpt_every: int = 250
    # 32 until step 1500, where the stop rule fired on noise (a TL re-measurement at 50 per
    # order found one structure at 0.86 and the card's "Before ..." template at 0.60).
    n_per_order: int = 64
    target: float = 0.9  # every held-out structure, each order
    # Phase E (from ``wide_from``): this share of structural templates is the widened form
    # (``ioi_grammar._draw_wide``: long adverbial leads, subordinate openers, more verbs).
    wide_frac: float = 0.0
    wide_from: int = 0


# Phase E: a further run from phase D's finished model (step 3000) with its own cosine
# schedule and new batches. At D's end one held-out structure (the names after a long
# adverbial clause) was at 0.94/0.77 and the card's "Before X and Y went home ..." at 0.86
# in ABBA order; everything else >= 0.98.
PHASES = {
    "D": {},
    "E": dict(
        data_seed=5,
        steps=1500,
        lr=2e-4,
        min_lr=2e-5,
        generated_ioi_frac=0.9,
        structural=0.8,
        long_from=0,
        long_frac=0.2,
        pseudo_lead_from=0,
        pseudo_lead_frac=0.3,
        wide_frac=0.4,
    ),  # fmt: skip
}


@torch.no_grad()
def evaluate_d(model: GPT2LMHeadModel, tok, n: int) -> dict:
    out = evaluate(model, tok)
    model.eval()
    templates = STRUCTURE_TEMPLATES + corpus.IOI_HELDOUT_TEMPLATES  # the card's four too
    by = metrics.ioi_by_order(hf_runner(model), tok, templates, n=n)
    model.train()
    out["structures"] = [[v["ABBA"], v["BABA"]] for v in by.values()]  # in that order
    out["structures_worst"] = metrics.worst_order_accuracy(by)
    out["structures_mean"] = sum(sum(v) for v in out["structures"]) / (2 * len(by))
    return out


def mix_at(cfg: PhaseDConfig, step: int) -> StructuralMix:
    return StructuralMix(
        share=cfg.structural,
        long=cfg.long_frac if step >= cfg.long_from else 0.0,
        pseudo_lead=cfg.pseudo_lead_frac if step >= cfg.pseudo_lead_from else 0.0,
        wide=cfg.wide_frac if step >= cfg.wide_from else 0.0,
    )


def bars_met(ev: dict, cfg: PhaseDConfig) -> bool:
    return (
        ev["structures_worst"] >= cfg.target
        and ev["ioi_heldout_templates"] >= 0.9
        and ev["facts"] >= 0.9
        and ev["best_induction_score"] >= 0.4
        and ev["first_copy_loss"] - ev["second_copy_loss"] >= 3.0
    )


def _resume(model, opt, args) -> tuple[int, list, str]:
    ckpt = args.work / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        return state["step"], state.get("history", []), f"{ckpt} (with optimizer)"
    meta = None if args.no_carry else load_point(model, args.carry, args.name)
    if meta is not None:
        return meta["step"], meta.get("history", []), f"{args.carry}/{args.name} (weights only)"
    return 0, [], f"{args.init} (init)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", choices=sorted(PHASES), default="D")
    ap.add_argument("--init", type=Path, default=None, help="D: assets/organism; E: phase D's")
    ap.add_argument("--work", type=Path, default=None, help="default runs/phase_<phase>")
    ap.add_argument("--carry", type=Path, default=CARRY_DIR)
    ap.add_argument("--no-carry", action="store_true", help="start from --init, not a carry point")
    ap.add_argument("--steps", type=int, default=None, help="the schedule's end")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stop-when-met", action="store_true")
    args = ap.parse_args()
    args.name = f"phase_{args.phase.lower()}"
    args.work = args.work or Path("runs") / args.name
    # phase D started from the phases A-C model (the base shipped before issue 13;
    # scripts/rebuild_organism.sh FRESH=1 writes it to runs/organism/model)
    default_init = "runs/organism/model" if args.phase == "D" else "runs/phase_d/model"
    args.init = args.init or Path(default_init)
    args.work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    torch.set_num_threads(args.threads)
    preset = PHASES[args.phase]
    cfg = PhaseDConfig(**{**preset, **({"steps": args.steps} if args.steps else {})})
    tok = PreTrainedTokenizerFast.from_pretrained(str(args.init))
    model = GPT2LMHeadModel.from_pretrained(str(args.init))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history, source = _resume(model, opt, args)
    rewarm_from = step if source.endswith("(weights only)") else 0
    log.info(
        "phase %s from %s at step %d; config %s", args.phase, source, step, json.dumps(asdict(cfg))
    )
    split = corpus.ioi_split()
    if step == 0:
        ev = evaluate_d(model, tok, cfg.n_per_order)
        history.append({"step": 0, **ev})
        log.info("step 0 eval %s", json.dumps(ev))

    def lr(s: int) -> float:
        base = _warm_cosine(s, 0, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr)
        return base * min(1.0, (s - rewarm_from + 1) / cfg.warmup) if rewarm_from else base

    t_last, tok_since, t_batch, t_step = time.time(), 0, 0.0, 0.0
    while step < cfg.steps:
        t0 = time.time()
        x = make_batch(
            tok, split, seed=cfg.data_seed, step=step, batch=cfg.batch, seq=cfg.seq,
            repeat_frac=cfg.repeat_frac, periodic_frac=cfg.periodic_frac,
            doc_weights=cfg.doc_weights, generated_ioi_frac=cfg.generated_ioi_frac,
            pseudo=cfg.pseudo_word_frac, structural=mix_at(cfg, step),
        )  # fmt: skip
        t1 = time.time()
        loss = train_step(model, opt, x, lr(step))
        t_batch, t_step = t_batch + t1 - t0, t_step + time.time() - t1
        step += 1
        tok_since += x.numel()
        if step % 25 == 0:
            dt = time.time() - t_last
            log.info(
                "step %d loss %.4f lr %.2e %.2f steps/s %.0f tok/s (batch %.1f s, train %.1f s)",
                step, loss, lr(step), 25 / dt, tok_since / dt, t_batch, t_step,
            )  # fmt: skip
            t_last, tok_since, t_batch, t_step = time.time(), 0, 0.0, 0.0
        done = step == cfg.steps
        if step % cfg.eval_every == 0 or done:
            t0 = time.time()
            ev = evaluate_d(model, tok, cfg.n_per_order)
            history.append({"step": step, **ev})
            log.info("step %d eval (%.1f s) %s", step, time.time() - t0, json.dumps(ev))
            done = done or (args.stop_when_met and bars_met(ev, cfg))
        if step % cfg.ckpt_every == 0 or done:
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                     "history": history}  # fmt: skip
            torch.save(state, args.work / "ckpt.pt")
            meta = {"phase": args.phase, "step": step, "data_seed": cfg.data_seed,
                    "config": asdict(cfg), "init": str(args.init), "history": history}  # fmt: skip
            save_point(model, args.work, args.name, meta)
        if done:
            break
    model.save_pretrained(str(args.work / "model"), safe_serialization=True)
    tok.save_pretrained(str(args.work / "model"))
    log.info("phase %s stopped at step %d; model in %s", args.phase, step, args.work / "model")


if __name__ == "__main__":
    main()
