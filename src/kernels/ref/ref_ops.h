// Scalar reference kernels: the truth every SIMD kernel is tested against.
// Owns: straightforward, obviously-correct loops (double accumulation where it matters).
// Does not own: speed. Never allocates, never throws (callers validate shapes).
#pragma once

#include <cstdint>

#include "kernels/weight.h"

namespace tern::kernels::ref {

// out[0:n] = W[row, col0 : col0+n] as f32 (block scales applied). col0 must be a multiple of
// weight_col_align(w.dtype); n too unless col0+n == cols.
void dequant_row(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* out);

// y[t, r] = sum_k x[t, k] * W[r, k] for t < T, r < w.rows; accumulates in double.
// x: [T, w.cols] with row stride ldx; y: [T, w.rows] with row stride ldy.
void matmul(const float* x, int64_t ldx, const WeightView& w, float* y, int64_t ldy, int64_t T);

// sum_i a[i] * b[i], accumulated in double.
float dot(const float* a, const float* b, int64_t n);

}  // namespace tern::kernels::ref
