#!/usr/bin/env bash
# Pipeline-parallel training against its simulation (docs/scale-out.md, "Pipeline parallel"):
# the same run (train-small-v3, --batch 8 x 256, 8 micro-batches of one window) in one process
# and with `mpirun -np 2 tern train --pp 2` under 1F1B and under DualPipe, one thread per rank.
# Prints per run the median step time, the median measured pipeline time (log.jsonl's
# pipeline.measured_s: the slowest rank, barrier to last op) and the median time the simulator
# predicts from the same step's measured per-stage F, B and W (pipeline.simulated_s), then
# `tern pipeline`'s prediction for the same shapes from its own per-layer measurement.
# Only loopback / shared memory: mpirun on this machine.
#
#   bash bench/scale_out/pipeline.sh   # WORK=out/pipeline STEPS=8 MICRO=8
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TERN=${TERN:-$ROOT/build/release/apps/tern/tern}
WORK=${WORK:-$ROOT/out/pipeline}
STEPS=${STEPS:-8}
MICRO=${MICRO:-8}
CONFIG=${CONFIG:-$ROOT/../shared/bench/train-small-v3.json}
[ -f "$CONFIG" ] || CONFIG=$ROOT/tests/golden/train_tiny_v3/config.json
command -v mpirun >/dev/null || { echo "mpirun not found: bash scripts/setup.sh" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
mkdir -p "$WORK"
corpus=$WORK/corpus.txt
[ -s "$corpus" ] || cat /usr/share/common-licenses/* >"$corpus"  # public text every Debian has
args=(train --config "$CONFIG" --data "$corpus" --steps "$STEPS" --batch 8 --seq 256 --lr 1e-3
  --seed 1 --threads 1 --eval-every 0 --sample-tokens 0 --force)
run() {  # run NAME COMMAND...: the command's run directory is $WORK/NAME
  local name=$1
  shift
  rm -rf "${WORK:?}/$name"
  "$@" --out "$WORK/$name" >"$WORK/$name.log" 2>&1
}
run one "$TERN" "${args[@]}"
run 1f1b mpirun -np 2 --oversubscribe "$TERN" "${args[@]}" --pp 2 --micro-batches "$MICRO"
run dualpipe mpirun -np 2 --oversubscribe "$TERN" "${args[@]}" --pp 2 --micro-batches "$MICRO" \
  --pp-schedule dualpipe
python3 - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def steps(name):
    rows = [json.loads(l) for l in open(f"{work}/{name}/log.jsonl")]
    return [r for r in rows if "split" not in r][1:]  # the first step sizes buffers
print("| run | step time (median) | pipeline, measured | pipeline, simulated | measured / simulated |")
print("|---|---|---|---|---|")
for name, label in (("one", "1 process"), ("1f1b", "mpirun -np 2 --pp 2, 1F1B"),
                    ("dualpipe", "mpirun -np 2 --pp 2, DualPipe")):
    s = steps(name)
    step = statistics.median(8 * 256 / r["tokens_per_s"] for r in s)
    if "pipeline" not in s[0]:
        print(f"| {label} | {step * 1e3:.0f} ms | | | |")
        continue
    m = statistics.median(r["pipeline"]["measured_s"] for r in s)
    p = statistics.median(r["pipeline"]["simulated_s"] for r in s)
    print(f"| {label} | {step * 1e3:.0f} ms | {m * 1e3:.0f} ms | {p * 1e3:.0f} ms | {m / p:.2f} |")
PY
echo
"$TERN" pipeline --config "$CONFIG" --pp 2 --micro-batches "$MICRO" --seq 256 --repeat 3
