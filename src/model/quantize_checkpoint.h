// `tern quantize`: a Hugging Face model directory rewritten with smaller matrices, in formats
// other engines load too — fp8 in DeepSeek-V3's own layout (e4m3 weights with 128×128 f32
// `weight_scale_inv` blocks, quantization_config quant_method "fp8"), int8 / int4 in
// compressed-tensors' "pack-quantized" layout as llm-compressor writes it for vLLM (int32 words,
// bf16 group scales, `weight_shape`, quant_method "compressed-tensors" with the kept modules in
// `ignore`). Chosen matrices (--keep-hi) stay in bf16 or, under int4, go int8 in a second config
// group; norms, biases and correction biases are
// written in f32. The tensors stream one at a time; the directory appears by rename when whole.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace tern::model {

struct QuantizeOptions {
  std::string type;     // fp8 | int8 | int4
  int64_t group = 128;  // int8 / int4: columns per scale (32, 64 or 128)
  // Matrices kept at higher precision: groups (embed, head, router, attn, shared, experts, mtp)
  // or module names (a name matches itself and every module under it), each in bf16 or, with
  // --type int4 / int8, an integer scheme of its own: "head:int8", "attn:int8-g128",
  // "experts:int4-g64".
  std::vector<std::string> keep_hi = {"embed", "head", "router"};
  // Per module ("model.layers.0.self_attn.q_a_proj"): the importance of each input column
  // (mean squared activation, `tern eval --imatrix`); rounding then minimises the
  // importance-weighted squared error. Empty: plain round-to-nearest.
  const std::vector<std::pair<std::string, std::vector<float>>>* imatrix = nullptr;
  // Or a file to read them from: tern's (`tern eval --imatrix`) or llama.cpp's (`llama-imatrix`,
  // GGUF or legacy .dat; model/llama_imatrix.h).
  std::string imatrix_file;
};

struct QuantizeSummary {
  int64_t quantized = 0, kept = 0;      // matrices
  int64_t bytes_in = 0, bytes_out = 0;  // tensor data
  std::vector<std::string> notes;       // matrices kept for a reason the user did not ask
};

// Fails (request) on an unknown type, group or keep-hi entry; (format/io) on a bad input.
QuantizeSummary write_quantized_model(const std::string& in_dir, const std::string& out_dir,
                                      const QuantizeOptions& o);

// What --keep-hi makes of a matrix: quantised with the main type, kept in bf16, or, under
// --type int4 / int8, an integer scheme of its own ("head:int8", "experts:int4-g64"; group 0:
// --block) in a config group of its own.
struct KeptAs {
  enum Kind { main, bf16, integer } kind = main;
  int bits = 0;
  int64_t group = 0;
};

// The first --keep-hi entry ("NAME" or "NAME:TYPE", NAME a group or a module name) that matches
// `module` decides.
KeptAs kept_precision(const std::vector<std::string>& keep_hi, const std::string& module,
                      const ModelConfig& c);

// One row of symmetric integers with a bf16 scale per group of `group` columns, q =
// clamp(round-half-even(x / scale), -2^(bits-1), qmax) (qmax 7 or 127). The scale is the one
// with the least squared error, weighted by `importance` per column when given: plain
// bf16(amax / qmax) first, then ±amax / t for t near qmax (a negative scale maps the peak to
// -2^(bits-1)), then the least-squares scale of the best integers. Writes q and the scales (as
// f32 values of the bf16 numbers).
void quantize_int_row(const float* x, int64_t cols, int bits, int64_t group,
                      const float* importance, int8_t* q, float* scales);

}  // namespace tern::model
