#!/usr/bin/env bash
# tern and llama.cpp side by side on the same GGUF files, in one run, same threads.
#
#   bench/compare_llama.sh [--work DIR] [--threads N] [-p 512] [-n 128] [--models "qwen2-1.5b v3-mini-8l"]
#                          [--types "q8_0 q4_0 Q4_K_M Q6_K"] [--tern PATH]
#
# 1. Builds llama.cpp's llama-bench from the source bundle npm `node-llama-cpp@3.22.1` ships
#    (llama/gitRelease.bundle), with explicit ISA flags: its GGML_NATIVE build picks AMX and
#    dies with SIGILL on these machines. llama.cpp is only measured; none of it goes into tern.
# 2. Makes each shape of ../shared/bench/ with `tern init` (bf16, random weights) and writes it
#    with `tern convert` as each type, so both engines read identical bytes. Upper-case types
#    (Q4_K_M, Q6_K, IQ2_XXS, ...) are written by llama.cpp's own llama-quantize from an f16
#    GGUF, with an importance matrix from llama-imatrix over README.md (the i-quants need one),
#    as the files people download are.
# 3. Runs `tern bench --json` and `llama-bench` on every file, alternating, and prints one table
#    (prefill and decode tokens/s, tern's decode roofline and the ratios).
# Everything is cached under --work (default /tmp/tern-compare): delete a file to redo a step.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=/tmp/tern-compare
threads=2
P=512
N=128
models="qwen2-1.5b v3-mini-8l"
types="q8_0 q4_0"
tern="$repo/build/release/apps/tern/tern"
shapes="$repo/../shared/bench"
while (($#)); do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -p) P=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    --tern) tern=$2; shift 2 ;;
    --shapes) shapes=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "compare_llama: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
[ -x "$tern" ] || { echo "compare_llama: $tern is not built (scripts/build.sh release)" >&2; exit 1; }

# --- llama.cpp -------------------------------------------------------------------------------
llama_bench="$work/llama.cpp/build/bin/llama-bench"
bash "$repo/bench/llama_cpp/build.sh" "$work" llama-bench llama-quantize llama-imatrix

tokenizer_for() {  # the tokenizer each shape ships with (tests' data folder)
  case "$1" in
    qwen2*) echo "$repo/build/release/tests/tokenizer/data/qwen3" ;;
    *) echo "$repo/build/release/tests/tokenizer/data/deepseek_v3" ;;
  esac
}

# --- models ----------------------------------------------------------------------------------
for m in $models; do
  [ -f "$work/$m/config.json" ] ||
    "$tern" init --config "$shapes/$m.json" --out "$work/$m" --dtype bf16 >/dev/null
  for t in $types; do
    [ -f "$work/$m-$t.gguf" ] && continue
    if [ "$t" = "$(echo "$t" | tr 'a-z' 'A-Z')" ]; then  # llama-quantize's type names
      bin="$work/llama.cpp/build/bin"
      [ -f "$work/$m-f16.gguf" ] ||
        "$tern" convert "$work/$m" "$work/$m-f16.gguf" --type f16 --tokenizer "$(tokenizer_for "$m")" >/dev/null
      [ -f "$work/$m-imatrix.gguf" ] ||
        "$bin/llama-imatrix" -m "$work/$m-f16.gguf" -f "$repo/README.md" -c 128 --chunks 8 \
          -t "$threads" -o "$work/$m-imatrix.gguf" >/dev/null 2>&1
      "$bin/llama-quantize" --imatrix "$work/$m-imatrix.gguf" "$work/$m-f16.gguf" \
        "$work/$m-$t.gguf" "$t" "$threads" >/dev/null 2>&1
    else
      "$tern" convert "$work/$m" "$work/$m-$t.gguf" --type "$t" --tokenizer "$(tokenizer_for "$m")" >/dev/null
    fi
  done
done

# --- measure ---------------------------------------------------------------------------------
results="$work/results.jsonl"
: >"$results"
for m in $models; do
  for t in $types; do
    f="$work/$m-$t.gguf"
    "$tern" bench "$f" -p "$P" -n "$N" --threads "$threads" --json |
      python3 -c 'import json,sys; d=json.load(sys.stdin); d["engine"]="tern"; d["file"]=sys.argv[1]; print(json.dumps(d))' "$m-$t" >>"$results"
    "$llama_bench" -m "$f" -p "$P" -n "$N" -t "$threads" -r 2 -o json 2>/dev/null |
      python3 -c 'import json,sys; rows=json.load(sys.stdin); d={"engine":"llama.cpp","file":sys.argv[1]}
for r in rows:
    d["prefill_tokens_per_s" if r["n_prompt"] else "decode_tokens_per_s"]=r["avg_ts"]
print(json.dumps(d))' "$m-$t" >>"$results"
  done
done

python3 - "$results" "$threads" "$P" "$N" <<'EOF'
import json, sys, platform, subprocess
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"machine: {cpu}, threads {sys.argv[2]}, pp{sys.argv[3]} / tg{sys.argv[4]}")
print("| file | tern pp tok/s | llama.cpp pp tok/s | pp ratio | tern tg tok/s | llama.cpp tg tok/s | tg ratio | tern roofline | llama.cpp roofline | bandwidth |")
print("|---|---|---|---|---|---|---|---|---|---|")
by = {}
for r in rows: by.setdefault(r["file"], {})[r["engine"]] = r
for f, e in by.items():
    t, l = e.get("tern", {}), e.get("llama.cpp", {})
    tp, tt, lp, lt = t.get("prefill_tokens_per_s", 0), t.get("decode_tokens_per_s", 0), l.get("prefill_tokens_per_s", 0), l.get("decode_tokens_per_s", 0)
    roof = t.get("roofline_fraction", 0)
    lroof = roof * lt / tt if tt else 0  # same bytes per token and bandwidth as tern's run
    print(f"| {f} | {tp:.1f} | {lp:.1f} | {tp/lp if lp else 0:.2f}x | {tt:.2f} | {lt:.2f} | {tt/lt if lt else 0:.2f}x | {roof:.0%} | {lroof:.0%} | {t.get('bandwidth_gbs', 0):.1f} GB/s |")
EOF
