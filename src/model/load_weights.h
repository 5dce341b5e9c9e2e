// Filling ModelWeights from a TensorSource: shape and dtype checks per tensor, FP8 scale
// pairing, f32 conversion of small vectors, and the one-time MLA absorption layout.
#pragma once

#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/tensor_source.h"
#include "model/weights.h"

namespace tern::model {

// Loads every slot of `c` from `src`. include_mtp loads the MTP modules too (they are optional
// in the file only when include_mtp is false); mla_naive also builds what the naive MLA form
// needs where that costs memory (split GGUFs). With expert parallelism only this rank's routed
// experts are loaded (the others' slots stay empty). Errors name the tensor and the file.
ModelWeights load_weights(const ModelConfig& c, const TensorSource& src, bool include_mtp,
                          bool mla_naive = false, const ExpertParallel& ep = {});

// Whether `src` holds the first MTP module of `c` (configs often declare
// num_nextn_predict_layers while converted files drop the module's tensors).
bool source_has_mtp(const ModelConfig& c, const TensorSource& src);

// Bytes of memory the weights occupy, each storage counted once (mapped file pages, converted
// vectors and derived layouts alike): what `tern info` reports as resident.
int64_t resident_weight_bytes(const ModelWeights& w);

// Dequantises a whole WeightView to a fresh f32 tensor [rows, cols].
Tensor dequantize(const kernels::WeightView& w);

}  // namespace tern::model
