// LoRA adapters on disk in Hugging Face PEFT's layout, so PEFT loads what tern trains and tern
// applies what PEFT trained: DIR/adapter_config.json (peft_type LORA, r, lora_alpha,
// target_modules as full module names, use_rslora) and DIR/adapter_model.safetensors with
// "base_model.model.<module>.lora_A.weight" [r, in] and ".lora_B.weight" [out, r].
#pragma once

#include <string>

#include "model/config.h"
#include "model/weights.h"
#include "model/lora.h"

namespace tern::model {

// Writes both files into the existing directory `dir` (each atomically); base_model is recorded
// as base_model_name_or_path.
void save_peft_adapter(const std::string& dir, const LoraAdapters& a, const std::string& base_model);

// Reads an adapter for `base` (a model of config c). Fails (io / format / config) naming the
// file, the tensor or the module: a missing file, a non-LORA peft_type, DoRA or per-module rank
// patterns (unsupported), a tensor whose module is not a Linear of the base or whose shape
// disagrees with it, an A without its B.
LoraAdapters load_peft_adapter(const std::string& dir, const model::ModelConfig& c,
                               model::ModelWeights& base);

}  // namespace tern::model
