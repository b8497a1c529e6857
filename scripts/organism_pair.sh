#!/usr/bin/env bash
# Train the organism pair, resumably: phase D (IOI on new structures) from the shipped base,
# then the chat fine-tune from phase D's model, then the chat evaluation. One torch thread
# (the machine is shared). Re-run after an interruption: each stage resumes from
# runs/<stage>/ckpt.pt, else from organism/carry/<stage>.*, else from its start.
# PHASE_D_STEPS / CHAT_STEPS set the stages' lengths (their cosine schedules end there).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=.venv/bin/python
mkdir -p runs/phase_d runs/chat
if [ ! -f runs/phase_d/model/model.safetensors ]; then
  $PY -m organism.phase_d --work runs/phase_d --steps "${PHASE_D_STEPS:-3000}" --threads 1 \
    --stop-when-met >> runs/phase_d/train.log 2>&1
fi
$PY -m organism.chat_train --init runs/phase_d/model --work runs/chat \
  --steps "${CHAT_STEPS:-1200}" --threads 1 >> runs/chat/train.log 2>&1
$PY -m organism.chat_eval --model runs/chat/model >> runs/chat/eval.log 2>&1
