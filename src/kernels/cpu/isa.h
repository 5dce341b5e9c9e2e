// Per-ISA primitive kernels (dequantise a row chunk, dot products, axpy) and run-time selection.
// Owns: the table of primitives for scalar / AVX2 / AVX-512 and picking one from CPUID.
// Does not own: loops over matrices (matmul.cpp) or model math. Each ISA lives in its own
// translation unit compiled with its own -m flags, so the binary runs on any x86-64.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/weight.h"

namespace tern::kernels {

struct IsaKernels {
  const char* name;
  // f32 values of W[row, col0 : col0+n] (block scales applied): a pointer into the weight
  // itself for f32, else into `buf` (n floats). Alignment rules as ref::dequant_row.
  const float* (*dequant)(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* buf);
  // out[i] = dot(w[i], x) for the 4 rows i = 0..3, each of length n.
  void (*dot4)(const float* const* w, const float* x, int64_t n, float* out);
  // out[4 * j + i] = dot(w[i], x[j]) for 4 rows w and 4 vectors x, each of length n: the
  // register-blocked micro-kernel for several tokens (each w and x load feeds 4 FMAs).
  void (*dot4x4)(const float* const* w, const float* const* x, int64_t n, float* out);
  // Fused dequantise-and-dot for one token: out[i] = dot(W[r0 + i, col0 : col0+n], x), i < 4,
  // without the intermediate buffer (the decode path, where each weight is used once). Returns
  // false when this ISA has no fused path for w.dtype; the caller then uses dequant + dot4.
  bool (*dot4_fused)(const WeightView& w, int64_t r0, int64_t col0, int64_t n, const float* x,
                     float* out);
  float (*dot)(const float* a, const float* b, int64_t n);
  // y += a * x
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // y[i] += a[i] * x for the 4 vectors y[0..3], each of length n (x read once for 4 rows: the
  // value sums of 4 attention rows).
  void (*axpy4)(const float* a, const float* x, float* const* y, int64_t n);
  // out[i] = exp(a * x[i] + b) (out may alias x): softmax weights and SiLU. The SIMD versions
  // use a range reduction to 2^n times a degree-6 polynomial, within 2 ulp of std::exp;
  // arguments below -87.3 give 0, above 88.7 give +inf, NaN stays NaN.
  void (*exp_affine)(const float* x, float a, float b, float* out, int64_t n);
  // max_i x[i] * scale (-inf when n is 0; NaNs skipped): a softmax row's shift.
  float (*max_scaled)(const float* x, int64_t n, float scale);
  // exp_affine, returning Σ out[i] summed in double: a softmax row's exponentials and their
  // normaliser in one pass.
  double (*exp_affine_sum)(const float* x, float a, float b, float* out, int64_t n);
  // RMSNorm of one row of d values: y = w ⊙ (x · r), r = 1 / sqrt(mean(x²) + eps) (the mean
  // summed in double as kernels::sum_squares_f64 sums); returns r. Every ISA gives the same
  // bits (the SIMD versions keep reduce.h's lane order and do no FMA contraction).
  float (*rmsnorm_row)(const float* x, const float* w, float* y, int64_t d, float eps);
  // Its backward for one row: dx (+)= r·(w⊙dy − x̂·mean(w⊙dy⊙x̂)), x̂ = r·x, the mean summed in
  // double in reduce.h's lane order, and dw += dy ⊙ x̂ (dw read before dx is written: dx may be
  // dy's storage). The same bits on every ISA.
  void (*rmsnorm_bwd_row)(const float* dy, const float* x, const float* w, float r, float* dx,
                          bool accumulate, float* dw, int64_t d);
};

const IsaKernels& isa_scalar();
const IsaKernels* isa_avx2();    // null when the build has no AVX2 unit
const IsaKernels* isa_avx512();  // null when the build has no AVX-512 unit

// CPUID checks for the integer kernels' 256-bit units (AVX2 with FMA and F16C; AVX-VNNI too).
bool cpu_has_avx2();
bool cpu_has_avx_vnni();

// ISAs this CPU can run, best first (scalar always last).
std::vector<const IsaKernels*> supported_isas();
// The ISA kernels use: the best supported one, or the one named by TERN_ISA (scalar, avx2,
// avx512) when set and supported.
const IsaKernels& active_isa();

}  // namespace tern::kernels
