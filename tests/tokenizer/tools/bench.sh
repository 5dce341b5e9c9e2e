#!/usr/bin/env bash
# Tokenizer encoding throughput, tern vs the reference Rust library (tokenizers@0.23.2 from npm),
# same corpus, same machine, one run. Prints a markdown table for docs/benchmarks.md.
# Usage: NODE_PATH=.../node_modules tests/tokenizer/tools/bench.sh TERN_BINARY MODELS_DIR CORPUS [CHUNK_LINES]
# MODELS_DIR holds deepseek_v3/, llama3/, qwen3/ (e.g. build/<dir>/tests/tokenizer/data).
set -euo pipefail
tern=$1 models=$2 corpus=$3 chunk=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) threads; corpus: $(basename "$corpus") ($(wc -c < "$corpus") bytes), $chunk line(s) per input"
echo
echo "| tokenizer | tern 1 thread | tern all threads | tokenizers 1 thread | tokenizers all threads | same token count |"
echo "|---|---|---|---|---|---|"
for m in deepseek_v3 llama3 qwen3; do
  t=$("$tern" tokenizer bench "$models/$m" --corpus "$corpus" --repeat 3 --chunk-lines "$chunk")
  h1=$(TOKENIZERS_PARALLELISM=false node "$here/bench.mjs" "$models/$m" "$corpus" 3 "$chunk")
  hn=$(node "$here/bench.mjs" "$models/$m" "$corpus" 3 "$chunk")
  node -e '
    const [m, t, h1, hn] = process.argv.slice(1); const T = JSON.parse(t), A = JSON.parse(h1), B = JSON.parse(hn);
    console.log(`| ${m} | ${T.mb_per_s_1} MB/s | ${T.mb_per_s_all} MB/s | ${A.mb_per_s} MB/s | ${B.mb_per_s} MB/s | ${T.tokens === A.tokens ? "yes" : "NO"} (${T.tokens}) |`);
  ' "$m" "$t" "$h1" "$hn"
done
