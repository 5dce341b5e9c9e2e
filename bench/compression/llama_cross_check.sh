#!/usr/bin/env bash
# Cross-check of the perplexity method: llama.cpp's llama-perplexity and tern eval on the same
# GGUF files and held-out text. The methods differ on purpose-built details — llama-perplexity
# cuts the text into windows of -c tokens and scores only the second half of each; tern eval
# (here with --stride equal to --ctx) scores every token after a window's first — so the figures
# should agree in size and in how the files rank, not to the last digit.
#   bash bench/compression/llama_cross_check.sh WORK LLAMA_BIN [CTX]
set -euo pipefail
work=$1
bin=$2
ctx=${3:-256}
tern=${TERN:-$(cd "$(dirname "$0")/../.." && pwd)/build/release/apps/tern/tern}
text=$work/corpora/code.heldout
echo "| file | llama-perplexity (-c $ctx) | tern eval (--ctx $ctx --stride $ctx) |"
echo "|---|---|---|"
for f in tern-q8_0.gguf tern-q4_0.gguf llama-Q4_0.gguf llama-Q4_K_M.gguf; do
  [ -e "$work/variants/$f" ] || continue
  lp=$("$bin/llama-perplexity" -m "$work/variants/$f" -f "$text" -c "$ctx" -t 2 2>&1 |
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  tp=$("$tern" eval "$work/variants/$f" --data "$text" --ctx "$ctx" --stride "$ctx" --json 2>/dev/null |
    python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["perplexity"])')
  echo "| $f | ${lp:-failed} | $tp |"
done
