// A loaded model as llama.cpp's GGUF (spec §12.2): the `deepseek2`, `qwen2` and `llama`
// layouts, the inverse of gguf_source.cpp. Owns: config -> metadata keys, Hugging Face names and
// layouts -> GGUF tensors (split MLA attn_k_b / attn_v_b, stacked experts, Llama's q/k rows
// permuted for adjacent-pair RoPE, llama3 scaling as rope_freqs divisors), and the storage type
// of every tensor. Does not own: the file layout (formats/gguf_writer.h), tokenizer keys
// (tokenizer/gguf_vocab.h) or the command line (apps/tern/cmd_convert.cpp).
//
// What GGUF cannot express is refused, never approximated: YaRN with mscale != mscale_all_dim,
// MoE layers not on every layer after the dense ones, routing combinations llama.cpp has no key
// for. What is left out (MTP modules) or changed (rows that cannot hold a block type) is listed
// in `notes`.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/gguf_value.h"
#include "formats/gguf_writer.h"
#include "model/model.h"

namespace tern::model {

struct GgufExportOptions {
  // Storage type of the matrices: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k; empty keeps
  // each matrix's own type where GGUF has it (FP8 becomes bf16). Vectors (norms, biases) and
  // MoE routers stay f32.
  std::optional<DType> type;
  // llama.cpp's "medium" k-quant mixes on top of `type` (q4_k or q5_k): the output head and,
  // in the layers llama.cpp gives more bits (the first and last eighth, and every third between),
  // attn_v and ffn_down in q6_k (Q4_K_M / Q5_K_M).
  bool medium_mix = false;
  std::string name;  // general.name
  // Keys appended verbatim after the model's own (the tokenizer's `tokenizer.*`).
  formats::GgufMetadata extra = formats::GgufMetadata();
};

struct GgufExport {
  formats::GgufMetadata metadata;
  std::vector<formats::GgufTensorSpec> specs;
  // writers[i] streams specs[i]'s bytes; they read the model's weights, which must outlive them.
  std::vector<std::function<void(const formats::GgufSink&)>> writers;
  std::vector<std::string> notes;  // one line per thing left out or stored differently
  uint64_t data_bytes() const;
};

// Plans the conversion of `m` (nothing is read or converted until a writer runs). Fails
// (ErrorKind::request) naming the field for a model GGUF cannot express.
GgufExport plan_gguf_export(const Model& m, const GgufExportOptions& opts);

// The storage types --type accepts.
bool gguf_export_type_supported(DType t);

// Parses --type: "auto" (nullopt), a supported dtype name, or "q4_k_m" / "q5_k_m" (their base
// type with medium_mix). Fails (request) naming the accepted values.
void parse_gguf_export_type(const std::string& name, GgufExportOptions* o);

}  // namespace tern::model
