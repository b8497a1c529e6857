#!/usr/bin/env bash
# Regenerate the demo organism (the base): model, evaluation, SAEs, transcoders, latent
# examples and the model card. Resumable: re-run after an interruption.
#
# The shipped base is phase E (organism/carry/README.md): phases A-C from the seed
# (organism.train), then phase D and phase E (organism.phase_d) so IOI holds on new sentence
# structures. By default the model is exported from the carried phase-E weights
# (organism/carry/phase_e.*, seconds); FRESH=1 trains all five phases from the seed instead
# (about 1 h for A-C plus about 1.5 h for D and E on one core; D and E stop when their IOI bar
# is met, and a fresh run is the same recipe, not bit for bit the carried weights, which were
# resumed across sessions with re-warmed learning rates). Then evaluation (under a minute)
# and the dictionaries (about 32 min on 2 quiet cores, one torch thread; more when shared).
# Every stage's wall time goes to $LOG.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=.venv/bin/python
WORK=${WORK:-runs/organism}
OUT=${OUT:-assets/organism}
LOG=${LOG:-runs/rebuild_organism.log}
mkdir -p "$WORK" "$(dirname "$LOG")"

stage() {  # stage NAME CMD...: run, log its wall time
  local name=$1 t0
  shift
  t0=$(date +%s)
  echo "$(date -u +%FT%TZ) $name ..." | tee -a "$LOG"
  "$@"
  echo "$(date -u +%FT%TZ) $name done in $(($(date +%s) - t0)) s" | tee -a "$LOG"
}

if [ "${FRESH:-0}" = 1 ]; then
  # phases A-C from the seed (organism.train, seed 0), then D (data seed 4) and E (seed 5)
  stage "phases A-C" $PY -m organism.train --work "$WORK" --out "$WORK/model" --threads 1
  stage "phase D" $PY -m organism.phase_d --phase D --init "$WORK/model" --work runs/phase_d \
    --steps 3000 --threads 1 --stop-when-met --no-carry
  stage "phase E" $PY -m organism.phase_d --phase E --init runs/phase_d/model \
    --work runs/phase_e --threads 1 --stop-when-met --no-carry
  stage "export" $PY -m organism.carry_export phase_e "$OUT" --base "$WORK/model" \
    --folder runs/phase_e --folder runs/phase_d
else
  # the carried phase-E weights, with the tokenizer and config already in $OUT
  stage "export" $PY -m organism.carry_export phase_e "$OUT" --base "$OUT"
fi
stage "evaluate" $PY -m organism.evaluate --model "$OUT"
stage "dictionaries" $PY -m organism.dictionaries --model "$OUT" --out "$OUT" --threads 1
stage "card" $PY -m organism.card "$OUT"
du -sh "$OUT" | tee -a "$LOG"
