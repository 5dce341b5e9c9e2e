// ModelSummary: what `tern info` reports about a model, from a config alone or from the files.
// Owns: gathering figures (formulas from model/param_count, tensor inventories from formats/)
// and rendering them as a table or JSON. Does not own: the formulas themselves.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace tern::app {

struct DTypeTotals {
  int64_t tensors = 0, elements = 0, bytes = 0;
};

struct ModelSummary {
  model::ModelConfig config;
  std::string source;  // path of the config, directory or GGUF file
  std::string format;  // "config", "safetensors", "gguf"
  bool has_files = false;
  std::map<std::string, DTypeTotals> dtype_mix;               // by dtype name (scales included)
  int64_t file_tensors = 0, file_bytes = 0, file_params = 0;  // params exclude FP8 scale tensors
  int64_t mtp_file_params = 0;  // tensors of layers >= num_hidden_layers
  // Bytes the loaded weights occupy (model::resident_weight_bytes): file tensors as mapped,
  // f32 norms and derived layouts such as MLA's W_UKᵀ; -1 when not loaded.
  int64_t resident_bytes = -1;
};

// From a config.json (or a directory holding one); no weights read.
ModelSummary summarize_config(const std::string& config_path);
// From a HF directory / .safetensors file / .gguf file: config plus the tensor inventory.
ModelSummary summarize_model(const std::string& path);

nlohmann::json summary_json(const ModelSummary& s);
std::string summary_table(const ModelSummary& s);

}  // namespace tern::app
