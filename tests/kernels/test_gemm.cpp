// The training GEMM on every micro-kernel this CPU runs against a double-precision triple loop,
// over all four transpose combinations, awkward sizes (0, 1, tile±1, K across packing blocks),
// padded strides with NaN poison (reads outside the views would show), accumulate mode, and
// the same bits whatever the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/gemm.h"

using namespace tern;
using namespace tern::kernels;

namespace {

// Null stands for gemm()'s own choice, which on AVX2 CPUs is the low-precision GEMM's driver
// with unrounded f32 packs (lowp_gemm.h) rather than any kernel listed here.
std::vector<const GemmMicroKernel*> micro_kernels() {
  std::vector<const GemmMicroKernel*> out{&gemm_micro_scalar(), nullptr};
  const std::string active = gemm_micro_active().name;
  if (active == "avx512") out.push_back(gemm_micro_avx512());
  if (active == "avx512" || active == "avx2") out.push_back(gemm_micro_avx2());
  return out;
}

const char* name_of(const GemmMicroKernel* mk) {
  return mk ? mk->name : "gemm()'s choice";
}

struct Case {
  int64_t M, N, K;
  bool ta, tb, acc;
};

// Runs one case; returns the result C (row stride N + 3) after checking it.
std::vector<float> run_case(const Case& c, const GemmMicroKernel* mk, ThreadPool& pool) {
  std::mt19937 rng(uint32_t(c.M * 131 + c.N * 17 + c.K));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const float nan = std::nanf("");
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  const int64_t lda = a_cols + 2, ldb = b_cols + 1, ldc = c.N + 3;
  std::vector<float> A(size_t(a_rows * lda + 1), nan), B(size_t(b_rows * ldb + 1), nan);
  std::vector<float> C(size_t(c.M * ldc + 1), nan);
  for (int64_t r = 0; r < a_rows; ++r)
    for (int64_t k = 0; k < a_cols; ++k) A[size_t(r * lda + k)] = u(rng);
  for (int64_t r = 0; r < b_rows; ++r)
    for (int64_t k = 0; k < b_cols; ++k) B[size_t(r * ldb + k)] = u(rng);
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) C[size_t(i * ldc + j)] = c.acc ? u(rng) : nan;
  const std::vector<float> C0 = C;
  GemmParams p{c.M, c.N, c.K, A.data(), lda, c.ta, B.data(), ldb, c.tb, C.data(), ldc, c.acc};
  gemm(p, &pool, mk);
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      double want = c.acc ? C0[size_t(i * ldc + j)] : 0.0, mag = std::fabs(want);
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = c.ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)];
        const double b = c.tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)];
        want += a * b;
        mag += std::fabs(a * b);
      }
      // f32 accumulation over K terms: |error| <= K * eps32 * sum|terms| (loose bound).
      const double tol = 1e-6 + double(c.K + 2) * 6e-8 * mag;
      if (!(std::fabs(C[size_t(i * ldc + j)] - want) <= tol)) {
        ADD_FAILURE() << C[size_t(i * ldc + j)] << " != " << want << " " << name_of(mk)
                      << " M=" << c.M << " N=" << c.N << " K=" << c.K << " ta=" << c.ta
                      << " tb=" << c.tb << " at " << i << "," << j;
        return C;
      }
    }
  // Padding after each row and after the matrix is untouched.
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = c.N; j < ldc && i * ldc + j < int64_t(C.size()); ++j)
      EXPECT_TRUE(std::isnan(C[size_t(i * ldc + j)]));
  return C;
}

}  // namespace

TEST(Gemm, EveryKernelAndTransposeMatchesDoubleReference) {
  ThreadPool pool(3);
  const int64_t sizes[][3] = {{0, 5, 3},   {3, 0, 4},   {2, 3, 0},     {1, 1, 1},    {7, 9, 5},
                              {8, 32, 16}, {9, 33, 17}, {17, 65, 300}, {70, 40, 513}};
  for (const GemmMicroKernel* mk : micro_kernels())
    for (const auto& s : sizes)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (int acc = 0; acc < 2; ++acc)
            run_case({s[0], s[1], s[2], ta != 0, tb != 0, acc != 0}, mk, pool);
}

TEST(Gemm, SameBitsWhateverTheThreadCount) {
  ThreadPool one(1), three(3);
  const Case c{67, 150, 600, false, true, true};
  for (const GemmMicroKernel* mk :
       {&gemm_micro_active(), static_cast<const GemmMicroKernel*>(nullptr)}) {
    const auto a = run_case(c, mk, one);
    const auto b = run_case(c, mk, three);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      if (!std::isnan(a[i])) {
        ASSERT_EQ(a[i], b[i]) << name_of(mk) << " " << i;
      }
  }
}
