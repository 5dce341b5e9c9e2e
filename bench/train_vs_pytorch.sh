#!/usr/bin/env bash
# Training speed race (issue #16): `tern train` against a tuned PyTorch implementation of the same
# step (bench/train_pytorch/fast_model.py: same model, loss and AdamW update, checked against the
# reference by bench/train_pytorch/check_fast_model.py), side by side in one run, same CPU, same
# config and batch shape. Prints a markdown table.
#
#   bench/train_vs_pytorch.sh [CONFIG]            (default ../shared/bench/train-small-v3.json)
#
# Environment (defaults in brackets):
#   TERN [build/release/apps/tern/tern]   CORPUS [synthetic text written to a temp dir]
#   BATCH [8]  SEQ [256]  THREADS ["1 2"]
#   PT_STEPS [3]     PyTorch timed steps (one more warm-up step is run and not timed)
#   TERN_STEPS [4]   tern steps; its first step (buffer sizing) is not counted, as PyTorch's warm-up
#   PT_PRECISIONS ["fp32 bf16"]   TERN_PRECISIONS ["fp32 bf16 fp8"]
#   PT_VARIANTS_2 ["2:2 2:1 1:2"]  PyTorch thread splits tried at 2 threads, as INTRA:BLAS
#                   (torch.set_num_threads : OPENBLAS_NUM_THREADS); every split gets its row
#   CORPUS_MB [2]  KEEP [0] (1: keep the temp dir with the run directories)
#   ROUNDS [1]     repeat the whole set this many times: each row then shows the median
#                  tokens/s, and the ratios are the medians (and ranges) of the per-round
#                  ratios, each against the best PyTorch row of the same round. On a shared
#                  host whose load moves both engines by 15-40% within minutes, one round's
#                  ratio says little.
#
# tokens/s: PyTorch = B*T / mean step time after the warm-up (bench_fast.py); tern = B*T / mean
# step time over steps 2..N from the run's log.jsonl (the same per-step clock tern reports).
# The ratio columns divide by the best PyTorch row at the same thread count, and by the best
# PyTorch row of the whole run (any precision, any threads).
set -u
cd "$(dirname "$0")/.."
CFG=${1:-${CFG:-../shared/bench/train-small-v3.json}}
TERN=${TERN:-build/release/apps/tern/tern}
PY=/usr/bin/python3
BATCH=${BATCH:-8}
SEQ=${SEQ:-256}
THREADS=${THREADS:-"1 2"}
PT_STEPS=${PT_STEPS:-3}
TERN_STEPS=${TERN_STEPS:-4}
PT_PRECISIONS=${PT_PRECISIONS:-"fp32 bf16"}
TERN_PRECISIONS=${TERN_PRECISIONS:-"fp32 bf16 fp8"}
PT_VARIANTS_2=${PT_VARIANTS_2:-"2:2 2:1 1:2"}
CORPUS_MB=${CORPUS_MB:-2}
KEEP=${KEEP:-0}
ROUNDS=${ROUNDS:-1}
ROUND=1
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 1; }

WORK=$(mktemp -d /tmp/train_vs_pytorch.XXXXXX)
if [ "$KEEP" = 1 ]; then echo "work dir: $WORK" >&2; else trap 'rm -rf "$WORK"' EXIT; fi
RESULTS=$WORK/results.tsv   # engine, precision, threads label, threads, tokens/s (or a word)
: > "$RESULTS"

if [ -z "${CORPUS:-}" ]; then
  CORPUS=$WORK/corpus.txt
  $PY bench/train_pytorch/make_corpus.py "$CORPUS" --mb "$CORPUS_MB" || exit 1
fi
[ -f "$CFG" ] || { echo "no config $CFG" >&2; exit 1; }
$PY -c 'import torch' 2>/dev/null || {
  echo "PyTorch is missing for $PY: apt-get install python3-torch libopenblas0-pthread" >&2
  exit 1
}
[ -x "$TERN" ] || echo "warning: no tern binary at $TERN (TERN=...); tern rows will say 'missing'" >&2

run_pytorch() {  # precision threads intra blas
  local p=$1 t=$2 i=$3 b=$4 out label
  label="$t (intra $i, blas $b)"
  [ "$t" = 1 ] && label=1
  out=$($PY bench/train_pytorch/bench_fast.py "$CFG" --batch "$BATCH" --seq "$SEQ" --steps "$PT_STEPS" \
        --threads "$t" --intra-threads "$i" --blas-threads "$b" --precision "$p" 2>"$WORK/pt.err")
  echo "$out" >&2
  local tps
  tps=$(echo "$out" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p' | tail -1)
  if [ -z "$tps" ]; then tps=failed; tail -5 "$WORK/pt.err" >&2; fi
  printf 'pytorch\t%s\t%s\t%s\t%s\t%s\n' "$p" "$label" "$t" "$tps" "$ROUND" >> "$RESULTS"
}

TOKENIZER=""
run_tern() {  # precision threads
  local p=$1 t=$2 dir=$WORK/tern-$1-$2-round$ROUND tps rc
  if [ ! -x "$TERN" ]; then printf 'tern\t%s\t%s\t%s\tmissing\t%s\n' "$p" "$t" "$t" "$ROUND" >> "$RESULTS"; return; fi
  local extra=()
  [ -n "$TOKENIZER" ] && extra=(--tokenizer "$TOKENIZER")
  "$TERN" train --config "$CFG" --data "$CORPUS" --out "$dir" --steps "$TERN_STEPS" --batch "$BATCH" \
      --seq "$SEQ" --threads "$t" --precision "$p" --sample-tokens 0 "${extra[@]}" > "$WORK/tern.out" 2>&1
  rc=$?
  if [ $rc != 0 ]; then
    if grep -qi 'precision' "$WORK/tern.out"; then tps=unsupported; else tps="failed (rc $rc)"; fi
    echo "tern train --precision $p --threads $t: exit $rc: $(grep -v '^\s*$' "$WORK/tern.out" | tail -2 | tr '\n' ' ')" >&2
  else
    [ -z "$TOKENIZER" ] && [ -d "$dir/tokenizer" ] && TOKENIZER=$dir/tokenizer   # train it once
    tps=$($PY - "$dir/log.jsonl" "$((BATCH * SEQ))" <<'EOF'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
steps = [s for s in steps if s.get("split") != "val"]
tok = float(sys.argv[2])
timed = steps[1:] or steps   # step 1 sizes every buffer: not counted (as PyTorch's warm-up)
print(f"{tok * len(timed) / sum(tok / s['tokens_per_s'] for s in timed):.1f}" if timed else "failed")
EOF
)
    echo "tern precision=$p threads=$t tokens_per_s=$tps ($(grep -o 'trained .*' "$WORK/tern.out" | head -1))" >&2
  fi
  printf 'tern\t%s\t%s\t%s\t%s\t%s\n' "$p" "$t" "$t" "$tps" "$ROUND" >> "$RESULTS"
}

START="$(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
for ROUND in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    variants="$t:$t"
    [ "$t" = 2 ] && variants=$PT_VARIANTS_2
    for p in $PT_PRECISIONS; do
      for v in $variants; do run_pytorch "$p" "$t" "${v%%:*}" "${v##*:}"; done
    done
    for p in $TERN_PRECISIONS; do run_tern "$p" "$t"; done
  done
done

echo
echo "Training tokens/s, $(basename "$CFG"), B$BATCH x T$SEQ; $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs"
echo "started $START; ended $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg); torch $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null); tern $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty')"
echo "PyTorch: $PT_STEPS timed steps after 1 warm-up; tern: $TERN_STEPS steps, the first not counted; $ROUNDS round(s)"
echo
$PY - "$RESULTS" <<'EOF'
import statistics
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def num(x):
    try:
        return float(x)
    except ValueError:
        return None
# The best PyTorch figure of each round at each thread count, and of the whole round.
best_t, best_all = {}, {}
for eng, p, label, t, v, r in rows:
    if eng == "pytorch" and num(v):
        best_t[(r, t)] = max(best_t.get((r, t), 0), num(v))
        best_all[r] = max(best_all.get(r, 0), num(v))
keys = []
for eng, p, label, t, v, r in rows:
    if (eng, p, label, t) not in keys:
        keys.append((eng, p, label, t))
def ratios(key, best):
    return [num(v) / best(r, t) for eng, p, label, t, v, r in rows
            if (eng, p, label, t) == key and num(v) and best(r, t)]
def show(rs):
    if not rs:
        return "-"
    m = f"{statistics.median(rs):.2f}x"
    return m if len(rs) == 1 else f"{m} ({min(rs):.2f}-{max(rs):.2f})"
print("| engine | precision | threads | tokens/s | x best PyTorch, same threads | x best PyTorch, any |")
print("| --- | --- | --- | ---: | ---: | ---: |")
for key in keys:
    eng, p, label, t = key
    vals = [v for e, pp, l, tt, v, r in rows if (e, pp, l, tt) == key]
    got = [num(v) for v in vals if num(v)]
    shown = f"{statistics.median(got):,.0f}" if got else vals[0]
    r1 = show(ratios(key, lambda r, t: best_t.get((r, t))))
    r2 = show(ratios(key, lambda r, t: best_all.get(r)))
    print(f"| {'PyTorch' if eng == 'pytorch' else 'tern'} | {p}{' autocast' if eng == 'pytorch' and p == 'bf16' else ''} "
          f"| {label} | {shown} | {r1} | {r2} |")
rounds = {r for *_, r in rows}
if len(rounds) > 1:
    print()
    print(f"tokens/s: median of {len(rounds)} rounds; ratios: median (min-max) of the per-round ratios")
EOF
