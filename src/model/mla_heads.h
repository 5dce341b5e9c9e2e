// The per-head MLA weights the attention reads (MlaWeights::uk_t / uv / uk), built once at load in
// the checkpoint's own dtype so absorbed attention runs on the same matmul kernels as every
// other weight. Inference-only layout transform; training reads kv_b_proj directly.
#pragma once

#include "model/config.h"
#include "model/weights.h"

namespace tern::model {

// Fills a.uk_t, a.uv and a.uk from a.kv_b_proj or, when the file split it, from a.k_b / a.v_b
// (there a.uk is a transposed copy, made only when with_naive). Transposes keep the dtype where
// that is exact: f32, bf16, f16, and fp8 e4m3 with its block scales transposed alongside. ggml
// blocks (q8_0, q4_k, ...) would run along the other axis after a transpose, so those are f32
// (exact): that happens only for GGUFs in the old single-kv_b layout (W_UK is ~1% of such a model)
// and for the naive form of split GGUFs. ErrorKind::format naming `where` for split tensors of the
// wrong shape or dtype.
void build_mla_heads(const ModelConfig& c, MlaWeights& a, bool with_naive,
                     const std::string& where);

}  // namespace tern::model
