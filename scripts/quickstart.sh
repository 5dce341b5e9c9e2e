#!/usr/bin/env bash
# The main job on the bundled default: set up, build, create a small random DeepSeek-V3-shaped
# checkpoint (MLA + MoE + MTP, FP8 block weights), describe it, run a forward pass, give it a
# tokenizer trained on the project's own docs, generate from it (MTP speculative decoding) and
# benchmark it. The weights are random, so the generated text is noise: the point is the path.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
tern=build/release/apps/tern/tern
out=out/quickstart
mkdir -p "$out"
"$tern" init --config configs/tiny-v3.json --out "$out/tiny-v3" --dtype fp8 --seed 1 --force
"$tern" info "$out/tiny-v3"
ids=$(seq -s, 1 32)
"$tern" logits "$out/tiny-v3" --ids "$ids" --out "$out/logits.npy" --force
"$tern" logits "$out/tiny-v3" --ids "$ids" --mtp --out "$out/mtp_logits.npy" --force
echo "quickstart: logits in $out/logits.npy, MTP logits in $out/mtp_logits.npy"
"$tern" tokenizer train --corpus README.md docs/*.md --vocab-size 4000 --out "$out/tokenizer" --force
cp "$out/tokenizer/tokenizer.json" "$out/tokenizer/tokenizer_config.json" "$out/tiny-v3/"
echo "quickstart: greedy generation from the random model (noise by design):"
"$tern" run "$out/tiny-v3" -p "DeepSeek on ordinary hardware" -n 24 --temp 0 | od -c | head -4
"$tern" bench "$out/tiny-v3" -p 64 -n 16 --batch 1,4
