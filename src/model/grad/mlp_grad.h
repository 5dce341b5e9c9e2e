// The SwiGLU MLP for training (dense layers, routed and shared experts alike):
// y = down(silu(gate(x)) ⊙ up(x)), forward beside backward.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "model/grad/saved.h"
#include "model/weights.h"

namespace tern::model::grad {

struct MlpSaved {
  Buffer gate, act;  // [N, 2·width] gate(x) and up(x) (mlp_store_at's layout), [N, width] act
};

// Where one MLP call keeps what its backward needs: gate(x) and up(x) rows at stride ld
// (2·width with up beside gate when the two are one GEMM, else width), act [N, width].
struct MlpStore {
  float* gate = nullptr;
  float* up = nullptr;
  float* act = nullptr;
  int64_t ld = 0;
};

// w's intermediate width (gate_proj's rows): a token takes 2·width gate/up values and width act
// values in an MlpStore.
int64_t mlp_store_width(const MlpWeights& w);
// A store for N tokens in s's own buffers (sized here; they only grow).
MlpStore mlp_store(const MlpWeights& w, MlpSaved& s, int64_t N);
// A store whose first token is row `row` of a shared region holding `rows` tokens: gates
// [rows, 2·width], acts [rows, width] (the routed experts' rows in one allocation, sized once
// per step, so the per-expert row counts that move from step to step never reallocate).
MlpStore mlp_store_at(const MlpWeights& w, float* gates, float* acts, int64_t rows, int64_t row);

// y[N, d] = MLP(x[N, d]); saves what the backward needs (x stays the caller's) in `at`.
void mlp_fwd(const MlpWeights& w, const float* x, int64_t N, float* y, const MlpStore& at,
             ThreadPool& pool);
// dx[N, d] (+)= ∂/∂x; weight gradients accumulate into g. `at` (the forward's) is clobbered.
void mlp_bwd(const MlpWeights& w, MlpWeights& g, const float* x, const float* dy, int64_t N,
             float* dx, bool accumulate, const MlpStore& at, ThreadPool& pool);

// The same with the store in s's buffers.
void mlp_fwd(const MlpWeights& w, const float* x, int64_t N, float* y, MlpSaved& s,
             ThreadPool& pool);
void mlp_bwd(const MlpWeights& w, MlpWeights& g, const float* x, const float* dy, int64_t N,
             float* dx, bool accumulate, MlpSaved& s, ThreadPool& pool);

}  // namespace tern::model::grad
