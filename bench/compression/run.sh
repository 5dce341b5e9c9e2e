#!/usr/bin/env bash
# Compression with measured quality (docs/compression.md): train a small DeepSeek-V3-style MoE on
# three domains (make_corpora.sh), then measure every way of making it smaller — tern quantize
# (fp8, int8, int4 g128 / g32, int4 g32 with an imatrix), GGUF types from tern convert, expert
# pruning (75% and 50% kept, dropped and merged) — by size on disk, decode speed and, on each
# domain's held-out text, perplexity, KL divergence from the original and top-1 agreement
# (tern eval --ref-logits: the original's distributions are saved once). Calibration (imatrix,
# routing statistics) uses the code domain only, so code is "in domain" and the rest is not.
# Stages resume: finished outputs are kept; delete one to redo it.
#
#   bash bench/compression/run.sh        # WORK=out/compression; table in $WORK/table.md
#
# Knobs (environment): WORK, TERN, THREADS, STEPS (training updates), BYTES (per domain),
# CTX (eval window), LLAMA_BIN (a folder with llama.cpp tools, built by
# bench/llama_cpp/build.sh with llama-quantize, llama-perplexity and llama-imatrix: adds
# llama.cpp's own Q4_0 / Q4_K_M rows, with and without its imatrix, and a cross-check).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TERN=${TERN:-$ROOT/build/release/apps/tern/tern}
WORK=${WORK:-$ROOT/out/compression}
STEPS=${STEPS:-2500}
BYTES=${BYTES:-3000000}
CTX=${CTX:-256}
LLAMA_BIN=${LLAMA_BIN:-}
THR=()
[ -n "${THREADS:-}" ] && THR=(--threads "$THREADS")
[ -x "$TERN" ] || { echo "build tern first: bash scripts/build.sh release" >&2; exit 1; }
mkdir -p "$WORK/variants" "$WORK/eval"
start=$(date +%s)
stamp() { echo "[compression $(($(date +%s) - start)) s] $*"; }

# 1. Corpora and the model.
[ -s "$WORK/corpora/code.heldout" ] || bash "$HERE/make_corpora.sh" "$WORK/corpora" "$BYTES"
C=$WORK/corpora
base=$WORK/train/checkpoint-$STEPS
if [ ! -d "$base" ]; then
  if ls -d "$WORK"/train/checkpoint-* >/dev/null 2>&1; then
    stamp "training: resuming"
    "$TERN" train --resume "$WORK/train" --steps "$STEPS" "${THR[@]}"
  else
    stamp "training $STEPS steps"
    "$TERN" train --config "$HERE/model.json" --data "$C/code.train:1" "$C/legal.train:1" \
      "$C/changelog.train:1" --out "$WORK/train" --force --steps "$STEPS" --batch 8 --seq "$CTX" \
      --lr 3e-3 --save-every 500 --keep 2 --seed 1 "${THR[@]}"
  fi
fi

# 2. The original's distributions on each held-out text, and the code-domain calibration.
for d in code legal changelog; do
  [ -s "$WORK/eval/ref_$d.lgt" ] || "$TERN" eval "$base" --data "$C/$d.heldout" --ctx "$CTX" \
    --exact --save-logits "$WORK/eval/ref_$d.lgt" "${THR[@]}" >/dev/null
done
[ -s "$WORK/imatrix.st" ] || "$TERN" eval "$base" --data "$C/code.train" --ctx "$CTX" --exact \
  --imatrix "$WORK/imatrix.st" "${THR[@]}" >/dev/null
[ -s "$WORK/routing.json" ] || "$TERN" prune "$base" "$WORK/variants/prune-100" --experts-keep 1 \
  --calib "$C/code.train" --ctx "$CTX" --stats-out "$WORK/routing.json" --force "${THR[@]}"
"$TERN" info --routing-stats "$WORK/routing.json" >"$WORK/routing.txt"

# 3. The variants.
V=$WORK/variants
make_variant() {  # make_variant NAME COMMAND...
  local name=$1
  shift
  [ -e "$V/$name" ] && return 0
  stamp "making $name"
  "$@"
}
make_variant fp8 "$TERN" quantize "$base" "$V/fp8" --type fp8
make_variant int8-g128 "$TERN" quantize "$base" "$V/int8-g128" --type int8 --block 128
make_variant int4-g128 "$TERN" quantize "$base" "$V/int4-g128" --type int4 --block 128
make_variant int4-g32 "$TERN" quantize "$base" "$V/int4-g32" --type int4 --block 32
make_variant int4-g32-imatrix "$TERN" quantize "$base" "$V/int4-g32-imatrix" --type int4 \
  --block 32 --imatrix "$WORK/imatrix.st"
make_variant int4-g128-imatrix "$TERN" quantize "$base" "$V/int4-g128-imatrix" --type int4 \
  --block 128 --imatrix "$WORK/imatrix.st"
# the token embedding in int4 too (as llama.cpp's Q4_0 stores it); the head stays bf16
make_variant int4-g32-imatrix-embed "$TERN" quantize "$base" "$V/int4-g32-imatrix-embed" \
  --type int4 --block 32 --imatrix "$WORK/imatrix.st" --keep-hi head,router
# llama.cpp's Q4_0 recipe in compressed-tensors: the embedding in int4, the head in int8 (a
# second config group; Q4_0 gives it q6_K), the router in bf16 (Q4_0: f32)
for g in 32 64; do
  make_variant "int4-g$g-imatrix-head8" "$TERN" quantize "$base" "$V/int4-g$g-imatrix-head8" \
    --type int4 --block "$g" --imatrix "$WORK/imatrix.st" --keep-hi router,head:int8
done
# ... with the routed experts (most of the bytes) in groups of 64 and the rest in groups of 32:
# Q4_0's size or less
make_variant int4-mixed-imatrix "$TERN" quantize "$base" "$V/int4-mixed-imatrix" --type int4 \
  --block 32 --imatrix "$WORK/imatrix.st" --keep-hi router,head:int8,experts:int4-g64
for t in bf16 q8_0 q4_0 q4_k_m; do
  make_variant "tern-$t.gguf" "$TERN" convert "$base" "$V/tern-$t.gguf" --type "$t"
done
for keep in 75 50; do
  for how in drop merge; do
    extra=()
    [ "$how" = merge ] && extra=(--merge)
    make_variant "prune-$keep-$how" "$TERN" prune "$base" "$V/prune-$keep-$how" \
      --experts-keep "0.$keep" --stats "$WORK/routing.json" --per-layer "${extra[@]}"
  done
done
if [ -n "$LLAMA_BIN" ] && [ -x "$LLAMA_BIN/llama-quantize" ]; then
  make_variant tern-f16.gguf "$TERN" convert "$base" "$V/tern-f16.gguf" --type f16
  for t in Q8_0 Q4_0 Q4_K_M; do
    make_variant "llama-$t.gguf" "$LLAMA_BIN/llama-quantize" "$V/tern-f16.gguf" "$V/llama-$t.gguf" "$t"
  done
  # llama.cpp's own importance matrix, on the same code calibration text
  if [ -x "$LLAMA_BIN/llama-imatrix" ]; then
    [ -s "$WORK/llama-imatrix.gguf" ] || {
      stamp "llama-imatrix"
      "$LLAMA_BIN/llama-imatrix" -m "$V/tern-f16.gguf" -f "$C/code.train" -c "$CTX" \
        -o "$WORK/llama-imatrix.gguf" ${THREADS:+-t "$THREADS"} >"$WORK/llama-imatrix.log" 2>&1
    }
    for t in Q4_0 Q4_K_M; do
      make_variant "llama-$t-imatrix.gguf" "$LLAMA_BIN/llama-quantize" --imatrix \
        "$WORK/llama-imatrix.gguf" "$V/tern-f16.gguf" "$V/llama-$t-imatrix.gguf" "$t"
    done
    # tern's rounding with llama.cpp's importance matrix
    make_variant int4-mixed-llama-imatrix "$TERN" quantize "$base" \
      "$V/int4-mixed-llama-imatrix" --type int4 --block 32 --imatrix "$WORK/llama-imatrix.gguf" \
      --keep-hi router,head:int8,experts:int4-g64
  fi
fi

# 4. Measure every variant (the original first) and write the table.
rows=("original:$base")
for v in fp8 int8-g128 int4-g128 int4-g128-imatrix int4-g32 int4-g32-imatrix \
  int4-g32-imatrix-embed int4-g32-imatrix-head8 int4-g64-imatrix-head8 int4-mixed-imatrix \
  int4-mixed-llama-imatrix tern-bf16.gguf tern-q8_0.gguf \
  tern-q4_0.gguf tern-q4_k_m.gguf llama-Q8_0.gguf llama-Q4_0.gguf llama-Q4_0-imatrix.gguf llama-Q4_K_M.gguf \
  llama-Q4_K_M-imatrix.gguf prune-75-drop prune-75-merge prune-50-drop \
  prune-50-merge; do
  [ -e "$V/$v" ] && rows+=("$v:$V/$v")
done
table=$WORK/table.md
{
  echo "| variant | size on disk | resident weights | decode tok/s | code PPL (ΔPPL) | code KL | code top-1 | legal PPL (ΔPPL) | legal KL | changelog PPL (ΔPPL) | changelog KL |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
} >"$table"
for row in "${rows[@]}"; do
  name=${row%%:*}
  path=${row#*:}
  out=$WORK/eval/$name.json
  if [ ! -s "$out" ]; then
    stamp "measuring $name"
    bench=$("$TERN" bench "$path" -p 64 -n 64 --json "${THR[@]}" 2>/dev/null)
    # the model's files only (a training checkpoint also holds its optimizer state)
    size=$(du -sb --exclude=optimizer.safetensors "$path" | cut -f1)
    echo "{\"size\": $size, \"bench\": $bench" >"$out.tmp"
    for d in code legal changelog; do
      e=$("$TERN" eval "$path" --data "$C/$d.heldout" --ctx "$CTX" --json \
        --ref-logits "$WORK/eval/ref_$d.lgt" "${THR[@]}" 2>/dev/null)
      echo ", \"$d\": $e" >>"$out.tmp"
    done
    echo "}" >>"$out.tmp"
    mv "$out.tmp" "$out"
  fi
  python3 - "$out" "$name" >>"$table" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
cells = [sys.argv[2], f"{j['size'] / 1e6:.2f} MB",
         f"{j['bench']['weight_resident_bytes'] / 1e6:.2f} MB",
         f"{j['bench']['decode_tokens_per_s']:.0f}"]
for d in ("code", "legal", "changelog"):
    e = j[d]
    cells.append(f"{e['perplexity']:.3f} ({100 * e['delta_perplexity']:+.2f}%)")
    cells.append(f"{e['kl_mean']:.5f}")
    if d == "code":
        cells.append(f"{100 * e['top1_agreement']:.1f}%")
print("| " + " | ".join(cells) + " |")
PY
done
if [ -n "$LLAMA_BIN" ] && [ -x "$LLAMA_BIN/llama-perplexity" ]; then
  [ -s "$WORK/cross_check.md" ] || bash "$HERE/llama_cross_check.sh" "$WORK" "$LLAMA_BIN" "$CTX" \
    >"$WORK/cross_check.md"
  cat "$WORK/cross_check.md"
fi
stamp "done: $table"
cat "$table"
