#!/usr/bin/env bash
# The main job on the bundled default: set up, build, create a small random DeepSeek-V3-shaped
# checkpoint (MLA + MoE + MTP, FP8 block weights), describe it and run a forward pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
tern=build/release/apps/tern/tern
out=out/quickstart
mkdir -p "$out"
"$tern" init --config configs/tiny-v3.json --out "$out/tiny-v3" --dtype fp8 --seed 1
"$tern" info "$out/tiny-v3"
ids=$(seq -s, 1 32)
"$tern" logits "$out/tiny-v3" --ids "$ids" --out "$out/logits.npy"
"$tern" logits "$out/tiny-v3" --ids "$ids" --mtp --out "$out/mtp_logits.npy"
echo "quickstart: logits in $out/logits.npy, MTP logits in $out/mtp_logits.npy"
