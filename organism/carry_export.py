"""Write a carry point as a loadable model directory (base architecture and tokenizer).

    python -m organism.carry_export phase_d /tmp/phase_d_model [--base assets/organism]

The chat point gets the chat template in its tokenizer config.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from organism.carry import CARRY_DIR, load_point
from organism.chat_template import install_chat_template


def export_point(name: str, out: Path, base: Path, folder: Path = CARRY_DIR) -> dict:
    model = GPT2LMHeadModel.from_pretrained(str(base))
    meta = load_point(model, folder, name)
    if meta is None:
        raise FileNotFoundError(f"no carry point {name!r} in {folder}")
    tok = PreTrainedTokenizerFast.from_pretrained(str(base))
    if meta.get("phase") == "chat":
        install_chat_template(tok)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out), save_jinja_files=False)
    return meta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("out", type=Path)
    ap.add_argument("--base", type=Path, default=Path("assets/organism"))
    ap.add_argument("--folder", type=Path, default=CARRY_DIR)
    args = ap.parse_args()
    meta = export_point(args.name, args.out, args.base, args.folder)
    print(f"exported {args.name} (phase {meta.get('phase')}, step {meta['step']}) to {args.out}")


if __name__ == "__main__":
    main()
