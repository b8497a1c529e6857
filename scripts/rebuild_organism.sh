#!/usr/bin/env bash
# Regenerate the demo organism from its seed: tokenizer + model (three phases), evaluation,
# SAEs, transcoders, latent examples and the model card. Resumable: re-run after an
# interruption and training continues from runs/organism/ckpt.pt.
# About 1 h of training and 16 min of dictionaries on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
WORK=${WORK:-runs/organism}
OUT=${OUT:-assets/organism}
$PY -m organism.train --work "$WORK" --out "$OUT"
$PY -m organism.evaluate --model "$OUT"
$PY -m organism.dictionaries --model "$OUT" --out "$OUT"
$PY -m organism.card "$OUT"
du -sh "$OUT"
