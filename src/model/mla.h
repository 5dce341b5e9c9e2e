// Multi-head Latent Attention (spec §6): the naive form (materialise per-head K/V from the
// latent) and the absorbed form (attend over the latent cache directly). Both write the new
// tokens' latent and roped k_pe into the cache and must agree to f32 rounding.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tern::model {

enum class MlaMode { absorbed, naive };

struct AttentionArgs {
  const float* x = nullptr;  // [T, hidden_size], already input_layernorm'd
  int64_t T = 0;
  int64_t pos0 = 0;      // position of x[0]; cache holds positions [0, pos0)
  float* out = nullptr;  // [T, hidden_size]
};

// Runs MLA for T new tokens; writes cache rows [pos0, pos0 + T).
void mla_forward(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                 const LayerCache& cache, const AttentionArgs& args, MlaMode mode, Arena& scratch);

// Floats of scratch mla_forward needs for T new tokens over S = pos0 + T cached positions.
int64_t mla_scratch_floats(const ModelConfig& c, int64_t T, int64_t S, MlaMode mode, int threads);

}  // namespace tern::model
