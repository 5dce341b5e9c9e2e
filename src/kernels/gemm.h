// gemm: C[M, N] (+)= op(A)[M, K] · op(B)[K, N] in f32, the training workhorse.
// Owns: packing A and B into register-tile panels, cache blocking and threading over output
// tiles. Does not own: the micro-kernels (cpu/gemm_*.cpp, one per ISA) or quantised weights
// (matmul.h serves inference). Every output element is summed over K in the same order
// whatever the thread count, so training is bit-reproducible across --threads.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace tern::kernels {

struct GemmParams {
  int64_t M = 0, N = 0, K = 0;
  const float* A = nullptr;  // trans_a ? [K, M] : [M, K], row stride lda
  int64_t lda = 0;
  bool trans_a = false;
  const float* B = nullptr;  // trans_b ? [N, K] : [K, N], row stride ldb
  int64_t ldb = 0;
  bool trans_b = false;
  float* C = nullptr;  // [M, N], row stride ldc
  int64_t ldc = 0;
  bool accumulate = false;  // C += product (else C = product)
};

// A register-tile micro-kernel: c[MR, NR] (row stride ldc) (+)= a·b over kc, where
// a = packed A panel [kc][mr] and b = packed B panel [kc][nr].
struct GemmMicroKernel {
  const char* name;
  int mr, nr;
  void (*run)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);
};

const GemmMicroKernel& gemm_micro_scalar();
const GemmMicroKernel* gemm_micro_avx2();    // null when the build has no AVX2 unit
const GemmMicroKernel* gemm_micro_avx512();  // null when the build has no AVX-512 unit
// The best micro-kernel this CPU runs (follows active_isa(), so TERN_ISA applies).
const GemmMicroKernel& gemm_micro_active();

// Runs on `pool` (the global pool when null) with `micro` (gemm_micro_active() when null;
// where that is the AVX2 kernel, gemm_lowp's f32 route instead: lowp_gemm.h).
// Sizes may be 0. Throws ErrorKind::internal for negative sizes or strides shorter than a row.
void gemm(const GemmParams& p, ThreadPool* pool = nullptr, const GemmMicroKernel* micro = nullptr);

}  // namespace tern::kernels
