// llama.cpp's importance matrices, read into tern's (model/imatrix.h) so `tern quantize
// --imatrix` takes a file from `llama-imatrix` as well as one from `tern eval --imatrix`:
// - GGUF (llama.cpp's default since mid-2025): general.type "imatrix"; per weight tensor
//   "<gguf name>.in_sum2" f32 ne [cols, n_mat] (sums of x² per input column, one row per expert
//   of a stacked MoE tensor) and "<gguf name>.counts" f32 ne [1, n_mat] (rows summed);
// - the legacy imatrix.dat: int32 entry count; per entry int32 name length, the name, int32
//   ncall, int32 nval and nval f32 holding mean x² × ncall; then trailing chunk / dataset fields.
// GGUF tensor names become this model's modules through model/gguf_names.h; stacked experts
// split into one entry per expert; experts the calibration never reached are left out (they
// round plainly).
#pragma once

#include <string>
#include <vector>

#include "model/imatrix.h"

namespace tern::model {

// `modules`: the model's Linear modules ("model.layers.3.mlp.experts.7.up_proj"). Entries that
// name no module of the model are counted in `*unmatched` (llama.cpp may hold tensors tern's
// layout has no counterpart for). Fails (format) naming the file on a malformed one.
Imatrix read_llama_imatrix(const std::string& path, const std::vector<std::string>& modules,
                           int64_t* unmatched);

// Any importance matrix: tern's safetensors, llama.cpp's GGUF or legacy .dat (told apart by
// their first bytes).
Imatrix read_any_imatrix(const std::string& path, const std::vector<std::string>& modules,
                         int64_t* unmatched);

}  // namespace tern::model
