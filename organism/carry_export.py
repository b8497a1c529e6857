"""Write a carry point as a loadable model directory (base architecture and tokenizer).

    python -m organism.carry_export phase_d /tmp/phase_d_model [--base assets/organism]

The chat point gets the chat template in its tokenizer config. Beside the weights,
``lineage.json`` lists the point and the carry points it was trained from (``ANCESTORS``),
each with its phase, step, data seed, config, init and last evaluation, for the model card.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from organism.carry import CARRY_DIR, load_point
from organism.chat_template import install_chat_template

ANCESTORS = {"phase_d": [], "phase_e": ["phase_d"], "chat": ["phase_d", "phase_e"]}


KEEP = ("train_config.json", "train_summary.json")  # phases A-C, for the base's card


def _find(name: str, folders: list[Path]) -> Path:
    """The first folder holding carry point `name`."""
    for f in folders:
        if (f / f"{name}.json").exists():
            return f
    raise FileNotFoundError(f"no carry point {name!r} in {[str(f) for f in folders]}")


def lineage(name: str, folders: list[Path] | Path = CARRY_DIR) -> list[dict]:
    """The carry points `name` descends from, oldest first, then `name` (no history); each
    looked up in the first of `folders` that has it."""
    folders = [folders] if isinstance(folders, Path) else folders
    out = []
    for n in [*ANCESTORS.get(name, []), name]:
        meta = json.loads((_find(n, folders) / f"{n}.json").read_text())
        last = meta.get("history", [{}])[-1] if meta.get("history") else {}
        keep = {k: v for k, v in meta.items() if k != "history"}
        out.append({"name": n, **keep, "last_eval": last})
    return out


def export_point(name: str, out: Path, base: Path, folder: Path | list[Path] = CARRY_DIR) -> dict:
    """Write carry point `name` (weights from the first of `folder` that has it) as a model
    directory `out`, with `base`'s config and tokenizer, its phases A-C files, and
    ``lineage.json``."""
    folders = [folder] if isinstance(folder, Path) else folder
    model = GPT2LMHeadModel.from_pretrained(str(base))
    meta = load_point(model, _find(name, folders), name)
    if meta is None:
        raise FileNotFoundError(f"no carry point {name!r} in {folders}")
    tok = PreTrainedTokenizerFast.from_pretrained(str(base))
    if meta.get("phase") == "chat":
        install_chat_template(tok)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out), save_jinja_files=False)
    for f in KEEP if meta.get("phase") != "chat" else ():
        if (base / f).exists() and base.resolve() != out.resolve():
            shutil.copyfile(base / f, out / f)
    (out / "lineage.json").write_text(json.dumps(lineage(name, folders), indent=1) + "\n")
    return meta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("out", type=Path)
    ap.add_argument("--base", type=Path, default=Path("assets/organism"))
    ap.add_argument(
        "--folder", type=Path, action="append",
        help="where carry points are looked up, in order (repeat; default organism/carry)",
    )  # fmt: skip
    args = ap.parse_args()
    meta = export_point(args.name, args.out, args.base, args.folder or [CARRY_DIR])
    print(f"exported {args.name} (phase {meta.get('phase')}, step {meta['step']}) to {args.out}")


if __name__ == "__main__":
    main()
