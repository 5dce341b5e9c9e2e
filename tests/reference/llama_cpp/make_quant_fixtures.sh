#!/usr/bin/env bash
# Regenerates tests/golden/llama_cpp_quants/: small models quantised by llama.cpp's own
# llama-quantize into every GGUF quantisation tern computes with (and by `tern convert` into the
# k-quants it writes, tern_*) (the standard mixes Q2_K ..
# Q6_K, IQ1_S .. IQ4_XS, and a DeepSeek-V3 model in a dynamic-1.58-bit-style mix: IQ1_S routed
# experts with higher-precision attention, shared experts, dense layer, embedding and head, as
# people run R1 at home), each with the logits llama.cpp computes for it (npm
# node-llama-cpp@3.22.1, CPU, f32 KV cache). The i-quants get an importance matrix from
# llama-imatrix over this repository's README, as llama-quantize requires.
# CI only reads the committed files (tests/model/test_llama_cpp_quants.cpp).
#
#   LLAMA_BIN=/path/to/llama.cpp/build/bin NODE_DIR=/tmp/nlc tests/reference/llama_cpp/make_quant_fixtures.sh
#
# LLAMA_BIN: llama.cpp's llama-quantize and llama-imatrix, built from the source npm
# node-llama-cpp@3.22.1 ships (bench/compare_llama.sh builds it; add
# --target llama-quantize llama-imatrix). Needs a release build of tern and /usr/bin/python3
# with numpy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tern=${TERN:-$root/build/release/apps/tern/tern}
llama_bin=${LLAMA_BIN:?set LLAMA_BIN to llama.cpp/build/bin}
out=$root/tests/golden/llama_cpp_quants

. "$here/node_env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"
ids='[1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 84]'

# source NAME GOLDEN-CONFIG EDIT-JSON: a random checkpoint of the golden fixture's config with
# EDIT applied, its head scaled so the logits spread over several units (tern init's weights
# give logits of order 1, where a quantisation error would hide), converted to f16 GGUF.
source() {
  local name=$1 cfg=$2 edit=$3
  /usr/bin/python3 - "$root/tests/golden/$cfg/config.json" "$edit" "$work/$name.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(json.loads(sys.argv[2]))
c["torch_dtype"] = "float32"
json.dump(c, open(sys.argv[3], "w"), indent=2)
PY
  "$tern" init --config "$work/$name.json" --out "$work/$name" --dtype f32 --seed 14 >/dev/null
  /usr/bin/python3 - "$work/$name/model.safetensors" <<PY
import sys
sys.path.insert(0, "$root/tests/reference")
import tensor_io
path = sys.argv[1]
t = tensor_io.read_safetensors(path)
dt, w = t["lm_head.weight"]
assert dt == "F32"
t["lm_head.weight"] = (dt, w * 12.0)
tensor_io.write_safetensors(path, t)
PY
  /usr/bin/python3 "$here/byte_tokenizer.py" >"$work/$name/tokenizer.json"
  "$tern" convert "$work/$name" "$work/$name-f16.gguf" --type f16 --name "$name" --force >/dev/null
  (cd "$work" && "$llama_bin/llama-imatrix" -m "$name-f16.gguf" -f "$root/README.md" -c 64 \
    --chunks 16 -o "$name-imatrix.gguf") >/dev/null 2>&1
}

# quantise NAME FIXTURE TYPE [llama-quantize options...]
quantise() {
  local name=$1 fixture=$2 type=$3
  shift 3
  local dst=$out/$fixture
  mkdir -p "$dst"
  # Relative paths: llama-quantize records the imatrix file's name in the GGUF, and the
  # temporary folder's would make every regeneration differ.
  (cd "$work" && "$llama_bin/llama-quantize" --imatrix "$name-imatrix.gguf" "$@" "$name-f16.gguf" \
    "$dst/model.gguf" "$type") >"$work/$fixture.log" 2>&1 || { cat "$work/$fixture.log"; exit 1; }
  (cd "$node_dir" && node logits.mjs "$dst/model.gguf" "$ids" "$dst/llama_cpp_logits.npy") >/dev/null
  /usr/bin/python3 - "$dst/case.json" "$fixture" "$type" "$ids" "$*" <<'PY'
import json, sys
path, name, type_, ids, opts = sys.argv[1:]
json.dump({"name": name, "llama_quantize_type": type_, "llama_quantize_options": opts or None,
           "imatrix": "llama-imatrix over README.md, 16 chunks of 64 tokens",
           "ids": json.loads(ids),
           "llama_cpp": "npm node-llama-cpp@3.22.1 (prebuilt linux-x64 CPU binary), 1 thread, "
                        "F32 KV cache, no flash attention",
           "logits": "llama_cpp_logits.npy [T, vocab] float32: next-token logits at each position"},
          open(path, "w"), indent=2)
PY
  echo "$fixture: $(du -h "$dst/model.gguf" | cut -f1)"
}

# tern_written NAME FIXTURE TYPE: the source converted by `tern convert --type TYPE` (tern's own
# k-quant encoders and Q4_K_M / Q5_K_M choices), with llama.cpp's logits for that file.
tern_written() {
  local name=$1 fixture=$2 type=$3
  local dst=$out/$fixture
  mkdir -p "$dst"
  "$tern" convert "$work/$name" "$dst/model.gguf" --type "$type" --name "$fixture" --force >/dev/null
  (cd "$node_dir" && node logits.mjs "$dst/model.gguf" "$ids" "$dst/llama_cpp_logits.npy") >/dev/null
  /usr/bin/python3 - "$dst/case.json" "$fixture" "$type" "$ids" <<'PY'
import json, sys
path, name, type_, ids = sys.argv[1:]
json.dump({"name": name, "tern_convert_type": type_, "ids": json.loads(ids),
           "llama_cpp": "npm node-llama-cpp@3.22.1 (prebuilt linux-x64 CPU binary), 1 thread, "
                        "F32 KV cache, no flash attention",
           "logits": "llama_cpp_logits.npy [T, vocab] float32: next-token logits at each position"},
          open(path, "w"), indent=2)
PY
  echo "$fixture: $(du -h "$dst/model.gguf" | cut -f1)"
}

source qwen2 qwen2_tiny '{"hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 2}'
for t in Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K Q4_1 Q5_1 IQ4_NL IQ4_XS IQ3_XXS IQ3_M IQ2_XXS IQ2_XS \
  IQ2_M IQ1_S IQ1_M; do
  quantise qwen2 "qwen2_$(echo "$t" | tr 'A-Z' 'a-z')" "$t"
done
for t in q4_k_m q5_k_m q6_k; do
  tern_written qwen2 "tern_qwen2_$t" "$t"
done

# DeepSeek-V3 (MLA, sigmoid noaux_tc routing) in a dynamic-1.58-bit-style mix.
source deepseek3 v3_tiny '{"hidden_size": 256, "intermediate_size": 256, "moe_intermediate_size": 256,
  "q_lora_rank": 256, "kv_lora_rank": 256, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
  "v_head_dim": 32, "num_hidden_layers": 2, "num_nextn_predict_layers": 0,
  "max_position_embeddings": 64, "rope_scaling": null}'
quantise deepseek3 deepseek3_dynamic_iq1_s IQ1_S \
  --token-embedding-type q4_k --output-tensor-type q6_k \
  --tensor-type attn=q4_k --tensor-type ffn_down_exps=iq2_xxs --tensor-type shexp=q5_k \
  --tensor-type ffn_gate.weight=q4_k --tensor-type ffn_up.weight=q4_k \
  --tensor-type ffn_down.weight=q5_k
echo "fixtures written to $out"
