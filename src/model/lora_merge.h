// Folding LoRA adapters into their base: W' = W + scale·B·A. Used to serve an adapter (`tern run
// --lora`, GRPO rollouts, generated samples during training) — the inference kernels know
// nothing of adapters — and by `tern merge` to write a standalone model.
#pragma once

#include <string>

#include "core/tensor.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/weights.h"

namespace tern::model {

// The merged matrix [rows, cols] in `out` (f32 or bf16), from a base in any stored dtype.
Tensor merged_matrix(const kernels::WeightView& base, const model::LoraPair& p, DType out);

// The dtype a merged matrix is stored in: the base's when it is f32, bf16 or f16 (bf16 for f16),
// else bf16 — re-quantising would round away most of a small update.
DType merged_dtype(DType base);

// A copy of `base` (sharing every tensor it does not change) whose adapted Linears hold their
// merged matrices and no adapter. Fails (config) for an adapter on a Linear the base lacks.
model::ModelWeights merge_lora(const model::ModelConfig& c, const model::ModelWeights& base,
                               const LoraAdapters& a);

// Recomputes, in place, the merged matrices of `merged` (made by merge_lora from `base`) after
// the adapters changed (a training step), writing into the tensors merge_lora made.
void remerge_lora(const model::ModelConfig& c, const model::ModelWeights& base,
                  const LoraAdapters& a, model::ModelWeights& merged);

// `base` with the PEFT adapter in adapter_dir (model/lora_peft.h) merged in: what `tern run
// --lora` serves. Errors name the adapter file and what does not fit the base.
Model merge_lora_adapter(const Model& base, const std::string& adapter_dir);

// `tern merge`: the Hugging Face model directory base_dir with the adapter folded in, written as
// a model directory at out_dir (an existing one is replaced only once the new one is whole): config.json (an FP8 base lists the merged
// modules in quantization_config.modules_to_not_convert, since they are stored in bf16), the
// tokenizer and generation files, and sharded safetensors holding every base tensor as stored
// except the adapted matrices (and their scales), which are merged. Streams one tensor at a
// time; the directory appears by rename only once complete. Returns the merged modules' count.
int64_t write_merged_model(const std::string& base_dir, const std::string& adapter_dir,
                           const std::string& out_dir);

}  // namespace tern::model
