#!/usr/bin/env bash
# Data-parallel training step time over MPI (docs/scale-out.md): the same run (train-small-v3,
# --batch 8 x 256 global) in one process and with `mpirun -np N` (1 thread per rank), the
# gradient reduction started during the backward (default) and after it (--no-comm-overlap),
# and with ZeRO-1 (--zero 1: moments sharded, gradients reduce-scattered, weights all-gathered).
# Prints per configuration: the median step time, the median communication the backward did not
# hide (log.jsonl's comm_s), the largest rank's peak resident set (the ledger's) and, for the
# overlapped run, the fraction of the non-overlapped run's exposed communication it hid. Only loopback / shared memory: mpirun on this machine.
#
#   bash bench/scale_out/run.sh        # WORK=out/scale_out NP=2 STEPS=30 BUCKET_MB=0.5
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TERN=${TERN:-$ROOT/build/release/apps/tern/tern}
WORK=${WORK:-$ROOT/out/scale_out}
NP=${NP:-2}
STEPS=${STEPS:-30}
BUCKET_MB=${BUCKET_MB:-0.5}
CONFIG=${CONFIG:-$ROOT/../shared/bench/train-small-v3.json}
[ -f "$CONFIG" ] || CONFIG=$ROOT/tests/golden/train_tiny_v3/config.json
command -v mpirun >/dev/null || { echo "mpirun not found: bash scripts/setup.sh" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
mkdir -p "$WORK"
corpus=$WORK/corpus.txt
[ -s "$corpus" ] || cat /usr/share/common-licenses/* >"$corpus"  # public text every Debian has
args=(train --config "$CONFIG" --data "$corpus" --steps "$STEPS" --batch 8 --seq 256 --lr 1e-3
  --seed 1 --threads 1 --eval-every 0 --sample-tokens 0 --bucket-mb "$BUCKET_MB" --force)
run() {  # run NAME COMMAND...: the command's run directory is $WORK/NAME
  local name=$1
  shift
  rm -rf "${WORK:?}/$name"
  "$@" --out "$WORK/$name" >"$WORK/$name.log" 2>&1
}
run one "$TERN" "${args[@]}"
run overlap mpirun -np "$NP" --oversubscribe "$TERN" "${args[@]}"
run after mpirun -np "$NP" --oversubscribe "$TERN" "${args[@]}" --no-comm-overlap
run zero mpirun -np "$NP" --oversubscribe "$TERN" "${args[@]}" --zero 1
python3 - "$WORK" "$NP" <<'PY'
import json, statistics, sys
work, np_ = sys.argv[1], sys.argv[2]
def steps(name):
    rows = [json.loads(l) for l in open(f"{work}/{name}/log.jsonl")]
    return [r for r in rows if "split" not in r][2:]  # the first steps size buffers
out = {}
for name in ("one", "overlap", "after", "zero"):
    s = steps(name)
    step = statistics.median(8 * 256 / r["tokens_per_s"] for r in s)
    comm = statistics.median(r.get("comm_s", 0.0) for r in s)
    ledger = json.load(open(f"{work}/{name}/ledger.json"))
    per_rank = ledger.get("data_parallel", {}).get("peak_resident_bytes_per_rank",
                                                  [ledger.get("peak_resident_bytes", 0)])
    out[name] = (step, comm, max(per_rank))
print(f"| run | step time (median) | exposed communication (median) | peak RSS (largest rank) |")
print(f"|---|---|---|---|")
labels = {"one": "1 process", "overlap": f"mpirun -np {np_}, reduction during the backward",
          "after": f"mpirun -np {np_}, reduction after the backward",
          "zero": f"mpirun -np {np_}, ZeRO-1 (--zero 1)"}
for name, (step, comm, rss) in out.items():
    print(f"| {labels[name]} | {step * 1e3:.1f} ms | {comm * 1e3:.2f} ms | {rss / 2**20:.0f} MiB |")
hidden = 1 - out["overlap"][1] / out["after"][1] if out["after"][1] > 0 else 0
print(f"\nhidden by overlap: {100 * hidden:.0f}% of the exposed communication; "
      f"speed-up over 1 process: {out['one'][0] / out['overlap'][0]:.2f}x")
PY
