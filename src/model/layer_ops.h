// Shared building blocks of the layers: linear with bias, dense SwiGLU MLP, scratch sizing.
// Owns: calling kernels on Linear weights. Does not own: attention or routing.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "model/weights.h"

namespace tern::model {

// y[T, rows] = x[T, cols] · Wᵀ + b. x row stride ldx, y row stride ldy (0 = contiguous). Runs on
// `pool` (the global pool when null), as every layer function here.
void linear_forward(const Linear& l, const float* x, int64_t T, float* y, int64_t ldx = 0,
                    int64_t ldy = 0, ThreadPool* pool = nullptr);

// y[T, d] = down(silu(gate(x)) * up(x)); scratch holds 2 * T * width floats.
void mlp_forward(const MlpWeights& m, const float* x, int64_t T, float* y, Arena& scratch,
                 ThreadPool* pool = nullptr);

// Floats an Arena needs for mlp_forward.
int64_t mlp_scratch_floats(int64_t T, int64_t width);

// Gathers embedding rows: out[t, :] = table[ids[t], :] (any stored dtype). Ids were validated.
void embed_rows(const Linear& table, const int32_t* ids, int64_t T, float* out);

}  // namespace tern::model
