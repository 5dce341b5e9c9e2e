// Filling ModelWeights from a TensorSource: shape and dtype checks per tensor, FP8 scale
// pairing, f32 conversion of small vectors, and the one-time MLA absorption layout.
#pragma once

#include "model/config.h"
#include "model/tensor_source.h"
#include "model/weights.h"

namespace tern::model {

// Loads every slot of `c` from `src`. include_mtp loads the MTP modules too (they are optional
// in the file only when include_mtp is false). Errors name the tensor and the file.
ModelWeights load_weights(const ModelConfig& c, const TensorSource& src, bool include_mtp);

// Builds W_UKᵀ per head ([H, kv_lora_rank, qk_nope_head_dim]) from kv_b_proj, for the absorbed
// MLA form; bf16 when kv_b_proj is bf16 (exact), else f32.
void derive_mla_absorption(const ModelConfig& c, MlaWeights& a);

// Dequantises a whole WeightView to a fresh f32 tensor [rows, cols].
Tensor dequantize(const kernels::WeightView& w);

}  // namespace tern::model
