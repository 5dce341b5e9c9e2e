#!/usr/bin/env bash
# Expert-parallel inference on one machine (docs/scale-out.md): a random bf16 checkpoint of a
# bench shape (default v3-mini-8l: 64 routed experts, d 2048), `tern logits` in one process and
# under `mpirun -np N ... --ep N`. Prints prefill (P ids at once, exact kernels) and decode (D
# ids one by one on the serving kernels, as generation runs) tokens/s and each run's largest
# peak resident set (/usr/bin/time): what each machine would have to hold. Loopback only.
#
#   bash bench/scale_out/ep_inference.sh     # WORK=out/ep_inference SHAPE=v3-mini-8l NP=2 P=256 D=32
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TERN=${TERN:-$ROOT/build/release/apps/tern/tern}
WORK=${WORK:-$ROOT/out/ep_inference}
SHAPE=${SHAPE:-v3-mini-8l}
NP=${NP:-2}
P=${P:-256}
D=${D:-32}
command -v mpirun >/dev/null || { echo "mpirun not found: bash scripts/setup.sh" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found: apt-get install time" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
mkdir -p "$WORK"
model=$WORK/$SHAPE
[ -f "$model/config.json" ] || "$TERN" init --config "$ROOT/../shared/bench/$SHAPE.json" \
  --out "$model" --dtype bf16 --seed 1 >/dev/null
ids() { python3 -c "print(','.join(str((i * 7919 + 13) % 120000) for i in range($1)))"; }
prefill_ids=$(ids "$P")
decode_ids=$(ids "$D")
threads=$(nproc)
per_rank=$((threads / NP > 0 ? threads / NP : 1))
run() {  # run NAME LAUNCH... -- ARGS...: stderr in $WORK/NAME.log
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1
}
for mode in prefill decode; do
  if [ $mode = prefill ]; then list=$prefill_ids extra=""; else list=$decode_ids extra="--fast"; fi
  run "one-$mode" /usr/bin/time -f "rss_kb %M" "$TERN" logits "$model" --ids "$list" \
    --out "$WORK/one.npy" --force --threads "$threads" $extra
  run "ep-$mode" mpirun -np "$NP" --oversubscribe /usr/bin/time -f "rss_kb %M" "$TERN" logits \
    "$model" --ids "$list" --out "$WORK/ep.npy" --force --threads "$per_rank" --ep "$NP" $extra
done
python3 - "$WORK" "$NP" "$P" "$D" "$threads" "$per_rank" <<'PY'
import re, sys
work, np_, P, D, threads, per_rank = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
def read(name):
    text = open(f"{work}/{name}.log").read()
    fwd = float(re.search(r"forward ([0-9.]+) s", text).group(1))
    rss = max(int(x) for x in re.findall(r"rss_kb (\d+)", text))
    return fwd, rss / 2**20
print(f"| run | prefill {P} tok/s | decode tok/s ({D} steps) | peak RSS, largest process |")
print("|---|---|---|---|")
for who, label in (("one", f"1 process, {threads} threads"), ("ep", f"mpirun -np {np_} --ep {np_}, {per_rank} thread(s) each")):
    pf, prss = read(f"{who}-prefill")
    df, drss = read(f"{who}-decode")
    print(f"| {label} | {P / pf:.1f} | {D / df:.2f} | {max(prss, drss):.2f} GiB |")
PY
