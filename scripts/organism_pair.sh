#!/usr/bin/env bash
# Train the organism pair, resumably: phase D (IOI on new structures) from the shipped base,
# phase E (a widened grammar) from phase D's end, then the chat fine-tune from phase E's
# model, then the chat evaluation. One torch thread (the machine is shared). Re-run after an interruption: each stage resumes from
# runs/<stage>/ckpt.pt, else from organism/carry/<stage>.*, else from its start.
# PHASE_D_STEPS / CHAT_STEPS set the stages' lengths (their cosine schedules end there).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=.venv/bin/python
mkdir -p runs/phase_d runs/phase_e runs/chat
if [ ! -f runs/phase_d/model/model.safetensors ]; then
  if [ -f organism/carry/phase_e.json ]; then  # phase D is done: its end is carried
    $PY -m organism.carry_export phase_d runs/phase_d/model
  else
    $PY -m organism.phase_d --work runs/phase_d --steps "${PHASE_D_STEPS:-3000}" --threads 1 \
      --stop-when-met >> runs/phase_d/train.log 2>&1
  fi
fi
if [ ! -f runs/phase_e/model/model.safetensors ]; then
  if [ -f organism/carry/phase_e.json ]; then  # carried where its bar was met (step 250)
    $PY -m organism.carry_export phase_e runs/phase_e/model
  else
    $PY -m organism.phase_d --phase E --threads 1 --stop-when-met >> runs/phase_e/train.log 2>&1
  fi
fi
$PY -m organism.chat_train --init runs/phase_e/model --work runs/chat \
  --steps "${CHAT_STEPS:-1200}" --threads 1 >> runs/chat/train.log 2>&1
$PY -m organism.chat_eval --model runs/chat/model >> runs/chat/eval.log 2>&1
