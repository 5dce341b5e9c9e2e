#!/usr/bin/env bash
# Regenerates tests/golden/llama_cpp/: GGUF files written by `tern convert` from the golden HF
# fixtures (one per llama.cpp layout: qwen2, llama, deepseek2 with split attn_k_b/attn_v_b), and
# the logits llama.cpp itself computes for them (npm node-llama-cpp@3.22.1, CPU, f32 KV cache).
# CI only reads the committed files (tests/model/test_llama_cpp_golden.cpp).
#
#   tests/reference/llama_cpp/make_fixtures.sh            # needs a release build, node and npm
#   TERN=path/to/tern NODE_DIR=/tmp/nlc tests/reference/llama_cpp/make_fixtures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tern=${TERN:-$root/build/release/apps/tern/tern}
out=$root/tests/golden/llama_cpp

. "$here/node_env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fixture golden-source type [config edit]
make_one() {
  local name=$1 source=$2 type=$3 edit=${4:-}
  local src=$work/$name dst=$out/$name
  mkdir -p "$src" "$dst"
  cp "$root/tests/golden/$source/"*.safetensors* "$root/tests/golden/$source/config.json" "$src/"
  if [ -n "$edit" ]; then
    /usr/bin/python3 - "$src/config.json" "$edit" <<'PY'
import json, sys
path, edit = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
for k, v in edit.items():
    node = c
    *parents, last = k.split(".")
    for p in parents:
        node = node[p]
    node[last] = v
json.dump(c, open(path, "w"), indent=2)
PY
  fi
  /usr/bin/python3 "$here/byte_tokenizer.py" > "$src/tokenizer.json"
  "$tern" convert "$src" "$dst/model.gguf" --type "$type" --name "$name" --force
  local ids
  ids=$(/usr/bin/python3 -c "import json; print(json.load(open('$root/tests/golden/$source/case.json'))['ids'][:16])")
  (cd "$node_dir" && node logits.mjs "$dst/model.gguf" "$ids" "$dst/llama_cpp_logits.npy")
  /usr/bin/python3 - "$dst/case.json" "$name" "$source" "$type" "$ids" "$edit" <<'PY'
import json, sys
path, name, source, type_, ids, edit = sys.argv[1:]
json.dump({"name": name, "converted_from": "tests/golden/" + source, "config_edit": edit or None,
           "tern_convert_type": type_, "ids": json.loads(ids),
           "llama_cpp": "npm node-llama-cpp@3.22.1 (prebuilt linux-x64 CPU binary), 1 thread, "
                        "F32 KV cache, no flash attention",
           "logits": "llama_cpp_logits.npy [T, vocab] float32: next-token logits at each position"},
          open(path, "w"), indent=2)
PY
}

make_one qwen2 qwen2_tiny f32
make_one llama llama3_tiny f32
# GGUF stores one YaRN mscale; v3_tiny's differ (0.9 / 0.8), so the copy uses 0.8 for both.
make_one deepseek2 v3_tiny f32 '{"rope_scaling.mscale": 0.8}'
make_one deepseek2_q8_0 v3_tiny q8_0 '{"rope_scaling.mscale": 0.8}'
echo "fixtures written to $out"
