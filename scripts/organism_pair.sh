#!/usr/bin/env bash
# The organism pair, resumably: phase D (IOI on new structures) from the phases A-C model,
# phase E (a widened grammar) from phase D's end, then the chat fine-tune from phase E's model
# and its evaluation; then the pair's dictionaries on the shipped pair (assets/organism and
# $CHAT): the chat model's SAEs (SAELens, at the base SAEs' hooks, on a 50/50 mix of chat
# conversations and base corpus, labels and top examples), the base SAEs read on both models
# (organism.pair_shift) and the chat model card. One torch thread (the machine is shared).
# Re-run after an interruption: each training stage resumes from runs/<stage>/ckpt.pt, else
# from organism/carry/<stage>.*, else from its start; D and E are exported from their carry
# points when those exist. Seeds: phase D data seed 4, E 5, chat 12 (their configs), SAE seed 0,
# dictionary rows 1001 (train) / 2002 (held out). PHASE_D_STEPS / CHAT_STEPS set the stages'
# lengths (their cosine schedules end there). Every stage's wall time goes to $LOG.
# To ship a retrained chat model: copy runs/chat/model/* into $CHAT before the last stages
# (SKIP_TRAIN=1 runs only them).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=.venv/bin/python
CHAT=${CHAT:-assets/organism-chat}
LOG=${LOG:-runs/organism_pair.log}
mkdir -p runs/phase_d runs/phase_e runs/chat

stage() {  # stage NAME CMD...: run, log its wall time
  local name=$1 t0
  shift
  t0=$(date +%s)
  echo "$(date -u +%FT%TZ) $name ..." | tee -a "$LOG"
  "$@"
  echo "$(date -u +%FT%TZ) $name done in $(($(date +%s) - t0)) s" | tee -a "$LOG"
}

if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  if [ ! -f runs/phase_d/model/model.safetensors ]; then
    if [ -f organism/carry/phase_e.json ]; then  # phase D is done: its end is carried
      stage "phase D (carried)" $PY -m organism.carry_export phase_d runs/phase_d/model
    else  # from the phases A-C model (FRESH=1 scripts/rebuild_organism.sh writes it)
      stage "phase D" sh -c "$PY -m organism.phase_d --work runs/phase_d \
        --steps ${PHASE_D_STEPS:-3000} --threads 1 --stop-when-met >> runs/phase_d/train.log 2>&1"
    fi
  fi
  if [ ! -f runs/phase_e/model/model.safetensors ]; then
    if [ -f organism/carry/phase_e.json ]; then  # carried where its bar was met (step 250)
      stage "phase E (carried)" $PY -m organism.carry_export phase_e runs/phase_e/model
    else
      stage "phase E" sh -c "$PY -m organism.phase_d --phase E --threads 1 --stop-when-met \
        >> runs/phase_e/train.log 2>&1"
    fi
  fi
  stage "chat fine-tune" sh -c "$PY -m organism.chat_train --init runs/phase_e/model \
    --work runs/chat --steps ${CHAT_STEPS:-1200} --threads 1 >> runs/chat/train.log 2>&1"
  stage "chat eval" sh -c "$PY -m organism.chat_eval --model runs/chat/model \
    >> runs/chat/eval.log 2>&1"
fi
# the pair's dictionaries, on the shipped pair (about 35 min on 2 quiet cores)
stage "chat SAEs" $PY -m organism.dictionaries --model "$CHAT" --out "$CHAT" \
  --chat-frac 0.5 --no-transcoders --threads 1
stage "base SAEs on the chat model" $PY -m organism.pair_shift --base assets/organism \
  --chat "$CHAT" --out "$CHAT/pair"
stage "chat card" $PY -m organism.chat_card "$CHAT"
du -sh assets | tee -a "$LOG"
