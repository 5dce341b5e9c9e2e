#!/usr/bin/env bash
# The main job on the bundled default, with nothing downloaded: set up and build, then train a
# small DeepSeek-V3-style model (MLA, a dense layer and two MoE layers of shared + routed experts
# with sigmoid routing and bias balancing, one MTP module) from scratch on the King James Bible
# (Debian's bible-kjv, public domain) for a few minutes, talk with it through `tern run` with MTP
# speculative decoding (acceptance printed) and print the run's ledger.
# QUICKSTART_STEPS=N shortens the training (CI runs 20 steps; the full run is 800).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
tern=build/release/apps/tern/tern
out=out/quickstart
steps=${QUICKSTART_STEPS:-800}
mkdir -p "$out"
bible -l10000 gen1:1-rev22:21 > "$out/kjv.txt"
"$tern" train --config configs/quickstart-v3.json --data "$out/kjv.txt" --out "$out/run" --force \
  --steps "$steps" --batch 8 --seq 128 --lr 3e-3 --eval-every $((steps / 4 > 0 ? steps / 4 : 1)) \
  --save-every $((steps / 4 > 0 ? steps / 4 : 1)) --keep 2
ckpt=$(ls -d "$out"/run/checkpoint-* | sort -t- -k2 -n | tail -1)
echo "quickstart: the trained model continues a verse (greedy, MTP speculative decoding on):"
"$tern" run "$ckpt" -p "And God said" -n 64 --temp 0
echo
echo "quickstart: the same without MTP, for the speed-up:"
"$tern" run "$ckpt" -p "And God said" -n 64 --temp 0 --no-mtp > /dev/null
echo "quickstart: pictures in $out/run/loss.svg and $out/run/expert_load.svg; ledger:"
cat "$out/run/ledger.json"
