"""The chat card's sections on its dictionaries: its own SAEs and the base SAEs read on it.

Rendered from ``dictionaries.json`` (``organism.dictionaries`` on the chat model) and
``pair/latent_shift.json`` (``organism.pair_shift``) beside the chat weights, when present.
"""

from __future__ import annotations

import json
from pathlib import Path

from organism.dictionary_card import render_dictionary_section


def _latent(e: dict) -> str:
    return f"{e['index']} ({e['label']})".replace("|", "\\|")


def shift_section(s: dict, k: int = 5) -> list[str]:
    hooks = s["hooks"]
    sets = list(next(iter(hooks.values()))["sets"])
    lines = [
        "## The base SAEs read on the chat model (`organism.pair_shift`)",
        "",
        "Each SAE of the base (`assets/organism/saes/`) encodes both models' activations at its "
        "hook on the same fixed texts: "
        f"{s['corpus_rows']} held-out base-corpus rows (seed {s['heldout_seed']}) and the chat "
        "model's held-out prompts in its chat template up to `Assistant:` (capital questions, "
        "harmful and harmless requests with held-out verbs and objects, additions), every "
        "content token, and for the requests also the last token alone. Per latent: mean "
        "activation and firing frequency under each model "
        "(`pair/<hook>.shift.safetensors`, format in `engine/latent_shift.py`; the top changes "
        "with their base labels in `pair/latent_shift.json`). Mean |Δ mean activation| over "
        "latents, per text set (tokens counted):",
        "",
        "| hook | "
        + " | ".join(f"{n} ({hooks[next(iter(hooks))]['sets'][n]})" for n in sets)
        + " |",
        "|---" * (len(sets) + 1) + "|",
    ]
    for hook, h in hooks.items():
        lines.append(
            f"| `{hook}` | "
            + " | ".join(f"{h['by_set'][n]['mean_abs_delta_mean']:.4f}" for n in sets)
            + " |"
        )
    lines += [
        "",
        "Refusal latents: ranked by how much more their mean activation rose (base → chat) on "
        "harmful than on harmless held-out requests at the last prompt token, where the "
        "refusal is decided: (chat harmful − chat harmless) − (base harmful − base harmless), "
        "so a latent that separates the two only in the chat model ranks first (mean "
        "activation there, base → chat):",
        "",
        "| hook | latent (base label) | harmful | harmless |",
        "|---|---|---|---|",
    ]
    for hook, h in hooks.items():
        for r in h["refusal"][:k]:
            a, b = r["harmful"], r["harmless"]
            lines.append(
                f"| `{hook}` | {_latent(a)} | {a['mean_base']:.3f} → {a['mean_chat']:.3f} | "
                f"{b['mean_base']:.3f} → {b['mean_chat']:.3f} |"
            )
    lines += [
        "",
        f"Largest rises in mean activation per text set (top {k}, base → chat):",
        "",
        "| hook | text set | latents (base label: base → chat) |",
        "|---|---|---|",
    ]
    for hook, h in hooks.items():
        for n in sets:
            rose = "; ".join(
                f"{_latent(e)}: {e['mean_base']:.3f} → {e['mean_chat']:.3f}"
                for e in h["by_set"][n]["rose"][:k]
            )
            lines.append(f"| `{hook}` | {n} | {rose} |")
    lines += ["", f"Measured in {s['seconds']} s."]
    return lines


def render_pair_sections(root: Path) -> str:
    """The chat model's SAE section and the base-SAE shift section, for what exists."""
    parts = []
    if (root / "dictionaries.json").exists():
        parts.append(
            render_dictionary_section(json.loads((root / "dictionaries.json").read_text()))
        )
    shift = root / "pair" / "latent_shift.json"
    if shift.exists():
        parts.append("\n".join(shift_section(json.loads(shift.read_text()))) + "\n")
    return "\n".join(parts)
