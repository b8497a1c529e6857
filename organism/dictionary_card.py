"""Render the SAE / transcoder section of the organism's model card from ``dictionaries.json``.

python -m organism.dictionary_card assets/organism > /tmp/section.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def sae_table(saes: dict) -> list[str]:
    lines = [
        "| hook point | latents | L0 | FVE | CE recovered | dead | CE clean / SAE / zero |",
        "|---|---|---|---|---|---|---|",
    ]
    for hook, m in saes.items():
        s = m["settings"]
        lines.append(
            f"| `{hook}` | {s['d_sae']} | {_f(m['l0'], 1)} | {_f(m['fve'])} | "
            f"{_f(m['ce_recovered'])} | {_f(m['dead_fraction'])} | "
            f"{_f(m['ce_clean'])} / {_f(m['ce_sae'])} / {_f(m['ce_zero'])} |"
        )
    return lines


def transcoder_table(tc: dict) -> list[str]:
    lines = ["| layer | latents | L0 | FVU | dead |", "|---|---|---|---|---|"]
    d = tc["settings"]["d_transcoder"]
    for i, layer in enumerate(tc["layers"]):
        lines.append(
            f"| {i} | {d} | {_f(layer['l0'], 1)} | {_f(layer['fvu'])} | {_f(layer['dead_fraction'])} |"
        )
    return lines


def smoke_line(smoke: dict) -> str:
    if "error" in smoke:
        return f"circuit-tracer `attribute` on “{smoke['prompt']}” failed: {smoke['error']}."
    return (
        f"circuit-tracer `attribute` on “{smoke['prompt']}”: {smoke['n_active_features']} "
        f"active latents, top logit {smoke['top_logit']!r}, {smoke['seconds']} s."
    )


def render_dictionary_section(summary: dict) -> str:
    """Markdown for the card: SAEs, transcoders (when built), replacement agreement, timings."""
    tc = summary.get("transcoders")
    held = summary["heldout"]
    chat = held.get("chat_frac")
    rows = (
        f"{held['rows']} held-out rows (seed {held['seed']}; {chat:.0%} of their documents "
        "chat-corpus conversations in the chat template, the rest base corpus)"
        if chat
        else f"{held['rows']} held-out corpus rows (seed {held['seed']})"
    )
    lines = [
        "## Sparse autoencoders" + (" and transcoders" if tc else ""),
        "",
        f"Measured on {rows}; the dictionaries trained on rows of the same mix from another "
        "seed. L0, FVE/FVU and dead fractions are over content tokens (BOS and pad left out), "
        "where SAEs and transcoders are spliced in. SAE CE is the mean next-token loss over all "
        "positions; replacement-model CE, KL and agreement are over predictions made at content "
        "positions. CE recovered uses zero-ablation (of the hook point, or of every MLP) as the "
        "baseline. A latent is dead when it never fires on these rows.",
        "",
        "### SAEs (SAELens, BatchTopK saved as JumpReLU)",
        "",
        *sae_table(summary["saes"]),
    ]
    if tc:
        smoke = tc["attribution_smoke"]
        lines += [
            "",
            "### Per-layer transcoders (circuit-tracer format, JumpReLU)",
            "",
            *(
                [
                    f"**Trained on another model**: {tc['trained_on']}. Every number below is "
                    "measured on this model.",
                    "",
                ]
                if tc.get("trained_on")
                else []
            ),
            *transcoder_table(tc),
            "",
            f"Replacement model (every MLP replaced by its transcoder, no error term): top-1 "
            f"next-token agreement {_f(tc['top1_agreement'])}, KL(model ‖ replacement) "
            f"{_f(tc['kl'], 4)} nats, CE {_f(tc['ce_model'])} → {_f(tc['ce_replacement'])} "
            f"(all MLPs zeroed: {_f(tc['ce_zero_mlp'])}; CE recovered {_f(tc['ce_recovered'])}).",
            "",
            smoke_line(smoke),
        ]
    lines += [
        "",
        "Phase times (s, wall clock, one torch thread; on a shared machine several times the "
        "quiet ones): " + ", ".join(f"{k} {v}" for k, v in summary["times_s"].items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "assets/organism")
    summary = json.loads((root / "dictionaries.json").read_text())
    sys.stdout.write(render_dictionary_section(summary))


if __name__ == "__main__":
    main()
