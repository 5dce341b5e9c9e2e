// Random initialisation of a model from its config, written as a Hugging Face checkpoint.
// Owns: the init distribution (normal(0, std) from core/random.h for matrices, ones for norms,
// zeros for biases) and choosing each tensor's stored dtype. Uses visit_weights, so every
// tensor the loader expects is produced, with the same names and shapes.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"

namespace tern::model {

enum class InitDType { f32, bf16, fp8 };

struct InitOptions {
  InitDType dtype = InitDType::bf16;  // fp8: Linear weights e4m3 + 128x128 scales, as V3 ships
  uint64_t seed = 0;
  double std = 0.02;
  uint64_t max_shard_bytes = 0;  // 0: one file
};

// Writes config.json and safetensors into `dir` (created if needed); returns the tensor count.
// `config_json` is written verbatim (plus quantization_config when dtype is fp8).
int64_t write_random_checkpoint(const ModelConfig& c, const std::string& config_json,
                                const std::string& dir, const InitOptions& opts);

}  // namespace tern::model
