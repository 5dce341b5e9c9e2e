#!/usr/bin/env bash
# `tern serve` and llama.cpp's `llama-server` side by side on the same GGUF, same threads, in one
# run: aggregate generated tokens/s and time to first token p50/p99 at 1, 4, 8 and 16 concurrent
# streams (bench/serve_load.mjs, loopback only). Each server runs with as many slots as streams
# (llama-server -np S with its continuous batching; tern serve --parallel S).
#
#   bench/serve_vs_llama.sh [--work DIR] [--threads 2] [--streams "1 4 8 16"] [--model qwen2-1.5b]
#                           [--type q8_0] [--prompt-words 128] [--max-tokens 64] [--tern PATH]
#
# llama-server is built like bench/compare_llama.sh builds llama-bench (from npm
# node-llama-cpp@3.22.1's source bundle, explicit ISA flags, no AMX), only to measure. The model
# is the ../shared/bench shape with random bf16 weights written by `tern convert` as --type.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=/tmp/tern-compare
threads=2
streams_list="1 4 8 16"
model=qwen2-1.5b
type=q8_0
words=128
max_tokens=64
tern="$repo/build/release/apps/tern/tern"
while (($#)); do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --streams) streams_list=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --type) type=$2; shift 2 ;;
    --prompt-words) words=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --tern) tern=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "serve_vs_llama: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
[ -x "$tern" ] || { echo "serve_vs_llama: $tern is not built (scripts/build.sh release)" >&2; exit 1; }

llama_server="$work/llama.cpp/build/bin/llama-server"
bash "$repo/bench/llama_cpp/build.sh" "$work" llama-server

case "$model" in
  qwen2*) tok="$repo/build/release/tests/tokenizer/data/qwen3"; ban="151643,151645" ;;
  *) tok="$repo/build/release/tests/tokenizer/data/deepseek_v3"; ban="1" ;;
esac
gguf="$work/$model-$type.gguf"
if [ ! -f "$gguf" ]; then
  [ -f "$work/$model/config.json" ] ||
    "$tern" init --config "$repo/../shared/bench/$model.json" --out "$work/$model" --dtype bf16 >/dev/null
  "$tern" convert "$work/$model" "$gguf" --type "$type" --tokenizer "$tok" >/dev/null
fi

pid=""
stop_server() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop_server EXIT
wait_ready() {  # $1: port
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "serve_vs_llama: the server on port $1 did not become ready" >&2
  exit 1
}
ctx=$((words * 2 + max_tokens + 64))  # tokens per sequence, with room for the prompt
results="$work/serve_results.jsonl"
: >"$results"
for s in $streams_list; do
  for engine in tern llama.cpp; do
    port=$((18500 + s))
    if [ "$engine" = tern ]; then
      "$tern" serve "$gguf" --host 127.0.0.1 --port "$port" --parallel "$s" --threads "$threads" \
        --ctx "$ctx" --quiet 2>"$work/serve-$engine-$s.log" &
    else
      "$llama_server" -m "$gguf" --host 127.0.0.1 --port "$port" -np "$s" -t "$threads" \
        -c $((ctx * s)) 2>"$work/serve-$engine-$s.log" >/dev/null &
    fi
    pid=$!
    wait_ready "$port"
    # A warm-up request, untimed, then the measured load.
    node "$repo/bench/serve_load.mjs" --url "http://127.0.0.1:$port/v1" --streams 1 --requests 1 \
      --prompt-words 16 --max-tokens 4 --ban "$ban" >/dev/null
    node "$repo/bench/serve_load.mjs" --url "http://127.0.0.1:$port/v1" --streams "$s" \
      --requests $((2 * s)) --prompt-words "$words" --max-tokens "$max_tokens" --ban "$ban" \
      --label "$engine" | tee -a "$results"
    stop_server
  done
done

python3 - "$results" "$threads" "$model-$type" "$words" "$max_tokens" <<'EOF'
import json, sys, subprocess
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"machine: {cpu}, threads {sys.argv[2]}, {sys.argv[3]}, ~{sys.argv[4]}-word prompts, {sys.argv[5]} tokens each")
print("| streams | tern tok/s | llama-server tok/s | ratio | tern TTFT p50 / p99 | llama-server TTFT p50 / p99 |")
print("|---|---|---|---|---|---|")
by = {}
for r in rows: by.setdefault(r["streams"], {})[r["label"]] = r
for s, e in sorted(by.items()):
    t, l = e.get("tern", {}), e.get("llama.cpp", {})
    tt, lt = t.get("tokens_per_s", 0), l.get("tokens_per_s", 0)
    print(f"| {s} | {tt:.2f} | {lt:.2f} | {tt/lt if lt else 0:.2f}x | {t.get('ttft_p50_s',0):.2f} / {t.get('ttft_p99_s',0):.2f} s | {l.get('ttft_p50_s',0):.2f} / {l.get('ttft_p99_s',0):.2f} s |")
EOF
