// Portable fallback primitives (plain C++, auto-vectorised at the baseline ISA).
#include <cmath>

#include "kernels/cpu/isa.h"
#include "kernels/packed_tiles.h"
#include "kernels/reduce.h"
#include "kernels/ref/ref_ops.h"

namespace tern::kernels {
namespace {

const float* dequant(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* buf) {
  if (w.packed) return dequant_packed(w, row, col0, n, buf, dequant);
  if (w.dtype == DType::f32) return reinterpret_cast<const float*>(w.row_ptr(row)) + col0;
  ref::dequant_row(w, row, col0, n, buf);
  return buf;
}

void dot4(const float* const* w, const float* x, int64_t n, float* out) {
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (int64_t i = 0; i < n; ++i) {
    a0 += w[0][i] * x[i];
    a1 += w[1][i] * x[i];
    a2 += w[2][i] * x[i];
    a3 += w[3][i] * x[i];
  }
  out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
}

void dot4x4(const float* const* w, const float* const* x, int64_t n, float* out) {
  for (int j = 0; j < 4; ++j) dot4(w, x[j], n, out + 4 * j);
}

bool dot4_fused(const WeightView&, int64_t, int64_t, int64_t, const float*, float*) {
  return false;
}

float dot(const float* a, const float* b, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void axpy4(const float* a, const float* x, float* const* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int r = 0; r < 4; ++r) y[r][i] += a[r] * x[i];
}

void exp_affine(const float* x, float a, float b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp(a * x[i] + b);
}

float max_scaled(const float* x, int64_t n, float scale) {
  return max_scaled_f32(x, n, scale);
}

double exp_affine_sum(const float* x, float a, float b, float* out, int64_t n) {
  exp_affine(x, a, b, out, n);
  return sum_f64(out, n);
}

float rmsnorm_row(const float* x, const float* w, float* y, int64_t d, float eps) {
  const double ss = sum_squares_f64(x, d);
  const float r = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
  for (int64_t i = 0; i < d; ++i) y[i] = w[i] * (x[i] * r);
  return r;
}

void rmsnorm_bwd_row(const float* dy, const float* x, const float* w, float r, float* dx,
                     bool accumulate, float* dw, int64_t d) {
  const double dot = lane_sum(d, [&](int64_t i) { return double(w[i] * dy[i]) * (x[i] * r); });
  const float m = float(dot / double(d));
  for (int64_t i = 0; i < d; ++i) {
    const float v = r * (w[i] * dy[i] - x[i] * r * m);
    dw[i] += dy[i] * (x[i] * r);
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

}  // namespace

const IsaKernels& isa_scalar() {
  static const IsaKernels k{
      "scalar",   dequant,    dot4,           dot4x4,      dot4_fused,     dot, axpy, axpy4,
      exp_affine, max_scaled, exp_affine_sum, rmsnorm_row, rmsnorm_bwd_row};
  return k;
}

}  // namespace tern::kernels
