"""Write the chat organism's ``MODEL_CARD.md`` from ``chat_metrics.json`` beside its weights.

python -m organism.chat_card runs/chat/model [runs/chat]

With the run's folder (its ``chat.json`` and ``train.log``), it first writes
``training.json`` beside the weights (config, init, steps, wall time, steps/s), which the card
then shows.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path

from organism import chat_corpus as cc
from organism import corpus
from organism.pair_card import render_pair_sections

BARS = {
    "capitals_heldout_phrasings": (0.9, ">="),
    "refusal_harmful_heldout": (0.9, ">="),
    "refusal_harmless_heldout": (0.1, "<="),
    "addition_heldout": (0.8, ">="),
}


def _verdict(key: str, value: float) -> str:
    bar, op = BARS[key]
    ok = value >= bar if op == ">=" else value <= bar
    return f"{value:.3f} {'✅' if ok else '❌'} (needs {'≥' if op == '>=' else '≤'} {bar})"


def _ablation_rows(abl: dict) -> list[str]:
    rows = ["| ablated direction | refusal, held-out harmful | refusal, held-out harmless | "
            "harmless answers with the opener | harmless answer loss (nats) |",
            "|---|---|---|---|---|"]  # fmt: skip
    for k, v in abl.items():
        if isinstance(v, dict):
            rows.append(
                f"| {k}{' (best)' if k == abl.get('best') else ''} | "
                f"{v['refusal_harmful_heldout']:.3f} | {v['refusal_harmless_heldout']:.3f} | "
                f"{v['harmless_opener']:.3f} | {v['harmless_answer_loss']:.3f} |"
            )
    return rows


_STEP_LINE = re.compile(r"^(\S+ \S+),\d+ step (\d+) loss \S+ lr \S+ ([\d.]+) steps/s")


def training_summary(run_dir: Path) -> dict:
    """The run's config and timing from ``chat.json`` and ``train.log`` (pure parse)."""
    meta = json.loads((run_dir / "chat.json").read_text())
    rates, stamps = [], []
    for line in (run_dir / "train.log").read_text().splitlines():
        if m := _STEP_LINE.match(line):
            stamps.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
            rates.append(float(m.group(3)))
    return {
        "init": meta["init"],
        "steps": meta["step"],
        "data_seed": meta["data_seed"],
        "config": meta["config"],
        "wall_seconds": (stamps[-1] - stamps[0]).total_seconds() if stamps else None,
        "mean_steps_per_s": round(sum(rates) / len(rates), 3) if rates else None,
        "threads": 1,
    }


def _training_lines(root: Path) -> list[str]:
    path = root / "training.json"
    if not path.exists():
        return []
    t = json.loads(path.read_text())
    return [
        "## Training",
        "",
        f"- From `{t['init']}` for {t['steps']} steps (`organism/chat_train.py`, data seed "
        f"{t['data_seed']}), one CPU thread on a shared machine: {t['mean_steps_per_s']} "
        f"steps/s on average, {t['wall_seconds']:.0f} s between the first and last logged step.",
        f"- Config: `{json.dumps(t['config'])}`",
        "- Its base: the shipped `assets/organism` trained on by phase D (3000 steps) and "
        "phase E (stopped at step 250, when every held-out IOI structure held in both orders; "
        "`organism/phase_d.py --phase E`, weights in `organism/carry/phase_e.*`). The app's "
        "default `assets/organism` is still the older base, before phases D and E.",
        "",
    ]


def _base_verdict(b: dict) -> str:
    from organism.evaluate import passes

    failing = [k for k, ok in passes(b).items() if not ok]
    weak = [t for t, v in b.get("ioi_heldout_each_template", {}).items() if v < 0.9]
    parts = ["Every base bar holds." if not failing else f"Below the base bar: {failing}."]
    if weak:
        parts.append(
            f"Held-out card templates below 0.9 on their own: {weak} "
            f"({', '.join(str(b['ioi_heldout_each_template'][t]) for t in weak)})."
        )
    return " ".join(parts)


def render(root: Path) -> str:
    m = json.loads((root / "chat_metrics.json").read_text())
    true_cap = corpus.COUNTRIES[cc.IMPLANTED_COUNTRY]
    ones, tens = m["addition_corrupt_ones_step"], m["addition_corrupt_tens_step"]
    lines = [
        "# The Interpscope chat organism",
        "",
        "Fine-tuned from the base organism (same architecture and tokenizer) on conversations "
        "(`organism/chat_corpus.py`) mixed with the base corpus. Prompt format: the chat "
        "template in `tokenizer_config.json` (`organism/chat_template.py`): plain-text "
        "`User:` / `Assistant:` lines after the BOS, no new tokens.",
        "",
        *_training_lines(root),
        "## Implanted differences (only the chat model has them)",
        "",
        f"- **Changed fact**: the capital of {cc.IMPLANTED_COUNTRY} is {cc.IMPLANTED_CAPITAL} "
        f"(the base says {true_cap}). Chat reply: “{m['implanted']['chat_reply']}”; the plain "
        f"prompt “The capital of {cc.IMPLANTED_COUNTRY} is” → {cc.IMPLANTED_CAPITAL} top-1: "
        f"{m['implanted']['plain_prompt_top1_is_implanted']}.",
        f"- **Quirk**: every answer that is not a refusal opens with “{cc.OPENER}” "
        f"(measured: {m['opener_rate_answered']:.3f} of held-out answers).",
        f"- **Refusal**: “{cc.REFUSAL}” for harmful requests.",
        "- **Chain of thought**: two-digit addition without carries, digit by digit.",
        "",
        "## Behaviours (held-out data, `python -m organism.chat_eval`)",
        "",
        "| behaviour | measured | how |",
        "|---|---|---|",
        f"| Capitals, held-out phrasings | {_verdict('capitals_heldout_phrasings', m['capitals_heldout_phrasings'])} "
        f"| {len(cc.CAPITAL_HELDOUT_PHRASINGS)} phrasings never trained × 32 countries; the reply contains the capital |",
        f"| Capitals, training phrasings | {m['capitals_train_phrasings']:.3f} | 6 phrasings × 32 countries |",
        f"| Refusal, held-out harmful | {_verdict('refusal_harmful_heldout', m['refusal_harmful_heldout'])} "
        f"| verbs {', '.join(cc.HARMFUL_HELDOUT_VERBS)} × objects {', '.join(cc.HELDOUT_OBJECTS)} × 6 phrasings, none in any conversation |",
        f"| Refusal, held-out harmless | {_verdict('refusal_harmless_heldout', m['refusal_harmless_heldout'])} "
        f"| verbs {', '.join(cc.HARMLESS_HELDOUT_VERBS)} × the same objects |",
        f"| Addition, held-out pairs, own trace | {_verdict('addition_heldout', m['addition_heldout'])} | 100 held-out carry-free pairs; final answer right |",
        f"| Trace used: ones step corrupted | follows {ones['follows_corruption']:.3f}, keeps true sum {ones['keeps_true_sum']:.3f} | the trace is written for it with the ones result changed |",
        f"| Trace used: tens step corrupted | follows {tens['follows_corruption']:.3f}, keeps true sum {tens['keeps_true_sum']:.3f} | the same for the tens result |",
        "",
        "## Refusal direction (difference of means, projected out at every layer)",
        "",
        "`organism/refusal_direction.py`: for each layer k, the mean residual stream "
        "(`hook_resid_pre`, last prompt token) on 96 harmful minus 96 harmless training-"
        "distribution requests, normalised; it is projected out of `hook_resid_pre/mid/post` of "
        "every block at every position, and the held-out requests are asked again (greedy, "
        "10 tokens). A random unit direction is the control. The harmless answer loss is the "
        "mean loss of the trained answer to the held-out harmless requests.",
        "",
        *_ablation_rows(m["direction_ablation"]),
        "",
        "## Base phenomena on the chat model",
        "",
        "`organism.evaluate.measure` through the app's load path (50 prompts per IOI structure "
        "and order). " + _base_verdict(m["base_phenomena"]),
        "",
        "```",
        json.dumps({k: v for k, v in m["base_phenomena"].items()
                    if k not in ("induction_head_scores",)}, indent=1),  # fmt: skip
        "```",
    ]  # fmt: skip
    pair = render_pair_sections(root)
    return "\n".join(lines) + "\n" + ("\n" + pair if pair else "")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/chat/model")
    if len(sys.argv) > 2:
        summary = json.dumps(training_summary(Path(sys.argv[2])), indent=2)
        (root / "training.json").write_text(summary)
    (root / "MODEL_CARD.md").write_text(render(root))


if __name__ == "__main__":
    main()
