// matmul_group: several matmuls in one parallel loop give each matmul's own result, to the bit,
// on the integer decode path and on the exact one, whatever mix of shapes, dtypes and shared
// inputs the group holds.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/int8_decode.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"

using namespace tern;
using namespace tern::kernels;

namespace {

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

struct Stored {
  DType t;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  WeightView view() const { return {t, rows, cols, bytes.data()}; }
};

Stored random_matrix(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> w = random_values(rows * cols, seed);
  Stored s{t, rows, cols, std::vector<uint8_t>(size_t(rows * dtype_bytes_for(t, cols)))};
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(t, w.data() + r * cols, cols, s.bytes.data() + r * dtype_bytes_for(t, cols));
  return s;
}

}  // namespace

TEST(MatmulGroup, EqualsEachMatmulAloneOnEveryPath) {
  ThreadPool pool(2);
  // Gate and up share x0; a second input of another width; a bf16 matrix (the bf16 decode path
  // where the CPU has AVX-512 BF16, rounding the same x0 separately), a two-token matmul, and odd
  // row counts that leave short tiles.
  const std::vector<Stored> ws = {
      random_matrix(DType::q8_0, 37, 96, 1), random_matrix(DType::q4_0, 41, 96, 2),
      random_matrix(DType::q4_0, 9, 160, 3), random_matrix(DType::bf16, 13, 96, 4),
      random_matrix(DType::q8_0, 6, 160, 5)};
  const std::vector<float> x0 = random_values(2 * 96, 10), x1 = random_values(2 * 160, 11);
  for (bool fast : {false, true}) {
    const ScopedServingKernels mode(fast);
    std::vector<std::vector<float>> alone(ws.size()), grouped(ws.size());
    std::vector<MatmulParams> ps;
    for (size_t i = 0; i < ws.size(); ++i) {
      const int64_t T = i == 4 ? 2 : 1, rows = ws[i].rows, cols = ws[i].cols;
      const float* x = cols == 96 ? x0.data() : x1.data();
      alone[i].assign(size_t(T * rows), -1.0f);
      grouped[i].assign(size_t(T * rows), -2.0f);
      matmul(MatmulParams{x, cols, alone[i].data(), rows, T, ws[i].view()}, &pool);
      ps.push_back(MatmulParams{x, cols, grouped[i].data(), rows, T, ws[i].view()});
    }
    matmul_group(ps.data(), int64_t(ps.size()), &pool);
    for (size_t i = 0; i < ws.size(); ++i)
      for (size_t r = 0; r < alone[i].size(); ++r)
        ASSERT_EQ(grouped[i][r], alone[i][r])
            << "matmul " << i << " value " << r << " fast " << fast;
  }
}

TEST(MatmulGroup, RefusesAnUnsupportedDtypeByName) {
  std::vector<uint8_t> bytes(64);
  std::vector<float> x(32), y(2);
  const MatmulParams p{x.data(), 32, y.data(), 2, 1, WeightView{DType::i64, 2, 32, bytes.data()}};
  try {
    matmul_group(&p, 1);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("i64"), std::string::npos) << e.what();
  }
}
