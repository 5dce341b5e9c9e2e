#!/usr/bin/env bash
# The FP8 fidelity experiment of DeepSeek-V3's recipe on a CPU: the same model trained in fp32,
# bf16 and fp8 on the same data and seed, then `tern compare` for the final losses (percent
# difference from fp32 and between fp8 and bf16) and one loss-curve picture.
#
#   bench/fp8_fidelity.sh [OUT_DIR]     # STEPS=600 CONFIG=../shared/bench/train-small-v3.json
#
# ABLATION=1 adds three fp8 runs with E4M3 inputs in one GEMM pass only (forward, input
# gradient, weight gradient; TERN_FP8_PASSES, the others bf16) and compares each with bf16:
# which GEMMs the gap comes from.
#
# Corpus: the King James Bible (Debian's bible-kjv, as the quickstart uses). Runs one after
# another on THREADS threads; the figures do not depend on the thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
tern=${TERN:-build/release/apps/tern/tern}
out=${1:-out/fp8_fidelity}
steps=${STEPS:-600}
config=${CONFIG:-../shared/bench/train-small-v3.json}
threads=${THREADS:-2}
mkdir -p "$out"
[ -s "$out/kjv.txt" ] || bible -l10000 gen1:1-rev22:21 > "$out/kjv.txt"
for p in fp32 bf16 fp8; do
  "$tern" train --config "$config" --data "$out/kjv.txt" --out "$out/$p" --force --seed 1 \
    --steps "$steps" --batch 8 --seq 256 --lr 3e-3 --eval-every $((steps / 10)) \
    --save-every "$steps" --keep 1 --threads "$threads" --precision "$p"
done
"$tern" compare "$out/fp32" "$out/bf16" "$out/fp8" --svg "$out/fidelity.svg"
"$tern" compare "$out/bf16" "$out/fp8"
if [ "${ABLATION:-0}" = 1 ]; then
  for pass in fwd dgrad wgrad; do
    TERN_FP8_PASSES=$pass "$tern" train --config "$config" --data "$out/kjv.txt" \
      --out "$out/fp8-$pass" --force --seed 1 --steps "$steps" --batch 8 --seq 256 --lr 3e-3 \
      --eval-every $((steps / 10)) --save-every "$steps" --keep 1 --threads "$threads" \
      --precision fp8
  done
  "$tern" compare "$out/bf16" "$out/fp8-fwd" "$out/fp8-dgrad" "$out/fp8-wgrad" "$out/fp8"
fi
