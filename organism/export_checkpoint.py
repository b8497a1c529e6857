"""Export a training checkpoint as a Hugging Face model directory (for development).

    python -m organism.export_checkpoint --work runs/organism --out /tmp/organism_dev

The checkpoint (``ckpt.pt`` from ``organism.train``) holds the GPT2LMHeadModel state dict;
the exported directory loads through ``engine.loading.load_model`` like the final model.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from organism.train import TrainConfig, build_model

log = logging.getLogger("organism.export_checkpoint")


def export_checkpoint(work: Path, out: Path) -> int:
    """Write the model in ``work/ckpt.pt`` and the tokenizer to `out`; return the step."""
    tok = PreTrainedTokenizerFast.from_pretrained(str(work / "tokenizer"))
    model = build_model(TrainConfig(), len(tok), tok)
    state = torch.load(work / "ckpt.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return int(state["step"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("runs/organism"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/organism_dev"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    step = export_checkpoint(args.work, args.out)
    log.info("exported step %d to %s in %.1f s", step, args.out, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
