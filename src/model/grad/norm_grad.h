// RMSNorm and the embedding lookup for training, each forward beside its backward.
// Owns the per-row math; the caller owns every buffer (saved statistics included).
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace tern::model::grad {

// y[N, d] = w ⊙ x / sqrt(mean(x²) + eps); saves rstd[N] for the backward. ld*: row strides.
void rmsnorm_fwd(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t d,
                 float eps, ThreadPool& pool, int64_t ldx = 0, int64_t ldy = 0);
// dx[N, d] (+)= the input gradient; dw[d] += Σ_rows dy ⊙ x̂ (rows summed in order, so the result
// does not depend on the thread count).
void rmsnorm_bwd(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                 bool accumulate, float* dw, int64_t N, int64_t d, ThreadPool& pool,
                 int64_t ldx = 0, int64_t lddx = 0, int64_t lddy = 0);

// out[N, d] = table[ids[n]]; ids already validated against the table's rows.
void embedding_fwd(const float* table, const int32_t* ids, int64_t N, int64_t d, float* out,
                   ThreadPool& pool);
// dtable[ids[n]] += dout[n], each table row summing its tokens in order (any thread count).
void embedding_bwd(const float* dout, const int32_t* ids, int64_t N, int64_t d, float* dtable,
                   ThreadPool& pool);

}  // namespace tern::model::grad
