// The SwiGLU MLP for training (dense layers, routed and shared experts alike):
// y = down(silu(gate(x)) ⊙ up(x)), forward beside backward.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "model/grad/saved.h"
#include "model/weights.h"

namespace tern::model::grad {

struct MlpSaved {
  Buffer gate, up, act;  // [N, width] each: gate(x), up(x), silu(gate) ⊙ up
};

// y[N, d] = MLP(x[N, d]); saves what the backward needs (x stays the caller's).
void mlp_fwd(const MlpWeights& w, const float* x, int64_t N, float* y, MlpSaved& s,
             ThreadPool& pool);
// dx[N, d] (+)= ∂/∂x; weight gradients accumulate into g. `s` is clobbered.
void mlp_bwd(const MlpWeights& w, MlpWeights& g, const float* x, const float* dy, int64_t N,
             float* dx, bool accumulate, MlpSaved& s, ThreadPool& pool);

}  // namespace tern::model::grad
