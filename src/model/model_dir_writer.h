// Writing a Hugging Face model directory derived from another (what `tern quantize`, `merge` and
// `prune` produce): config.json, the files beside the weights that describe the tokenizer, chat
// template and generation settings, and sharded safetensors streamed one tensor at a time. The
// directory is assembled under a temporary name and renamed into place only when complete, so a
// failure leaves nothing at out_dir (and an existing out_dir, which the caller chose to replace,
// untouched).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/safetensors_writer.h"

namespace tern::model {

void write_model_directory(const std::string& in_dir, const std::string& out_dir,
                           const nlohmann::ordered_json& config,
                           const std::vector<formats::TensorSpec>& specs,
                           const formats::TensorProducer& produce);

// Lists `modules` as stored unquantised in config's quantization_config, under the key its
// method reads (fp8: modules_to_not_convert; compressed-tensors: ignore); nothing without one.
void mark_unquantized(nlohmann::ordered_json& config, const std::vector<std::string>& modules);

// Whether a tensor of a model directory's files is the model's ("model.*", "lm_head.*"): a
// training checkpoint's directory also holds optimizer.safetensors (exp_avg.*), which derived
// models must not carry.
bool is_model_tensor(const std::string& name);

// The f32 tensor t rounded to bf16.
Tensor to_bf16(const Tensor& t);

}  // namespace tern::model
