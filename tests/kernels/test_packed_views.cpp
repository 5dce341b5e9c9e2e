// Q8_0 / Q4_0 and k-quant weights prepacked for decode (WeightView::packed): every reader gives
// what it gives on the stored rows. The exact path, the prefill GEMMs (int8, AMX) and the reference
// read unpacked rows, so they must agree bit for bit; the decode paths run the packed kernel, which
// sums in another order, so they agree to float rounding. Row readers that were not taught the
// packed layout must refuse it rather than read shuffled bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/matmul.h"
#include "kernels/packed_k_tiles.h"
#include "kernels/packed_tiles.h"
#include "kernels/ref/ref_ops.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::random_ggml_blocks;
using tern::kernels::testing::random_values;
using tern::kernels::testing::random_weights;

namespace {

// Q8_0 / Q4_0 quantised from random values; k-quants as random blocks (finite scales), which tern
// cannot all encode.
std::vector<uint8_t> stored_weights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  if (!is_k_packed(t)) return random_weights(t, rows, cols, seed);
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(size_t(dtype_bytes_for(t, rows * cols)));
  random_ggml_blocks(t, rows * cols / 256, rng, out.data());
  return out;
}

const DType kPackable[] = {DType::q8_0, DType::q4_0, DType::q2_k, DType::q3_k,
                           DType::q4_k, DType::q5_k, DType::q6_k};

// A stored matrix and its packed copy, as views.
struct Pair {
  std::vector<uint8_t> stored, packed;
  WeightView s, p;
  Pair(DType t, int64_t rows, int64_t cols, uint32_t seed)
      : stored(stored_weights(t, rows, cols, seed)), packed(size_t(packed_bytes(t, rows, cols))) {
    pack_tiles(t, stored.data(), rows, cols, packed.data());
    s = WeightView{t, rows, cols, stored.data()};
    p = s;
    p.data = packed.data();
    p.packed = true;
  }
};

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float f : v) m = std::max(m, std::fabs(f));
  return m;
}

}  // namespace

TEST(PackedViews, StoredRowsAndSegmentsGiveTheStoredBytes) {
  for (DType t : kPackable) {
    const int64_t be = dtype_block_elems(t), blocks = be == 32 ? 67 : 5;
    const int64_t rows = 9, cols = blocks * be, rb = dtype_bytes_for(t, cols);
    const Pair m(t, rows, cols, 5);
    std::vector<uint8_t> scratch;
    const WeightView r = stored_rows(m.p, 4, 5, scratch);
    EXPECT_FALSE(r.packed);
    ASSERT_EQ(r.rows, 5);
    EXPECT_EQ(0, std::memcmp(r.data, m.stored.data() + 4 * rb, size_t(5 * rb)));
    for (int64_t row : {0, 3, 8}) {
      const WeightView seg = stored_row_segment(m.p, row, 2 * be, 3 * be, scratch);
      EXPECT_EQ(seg.rows, 1);
      EXPECT_EQ(seg.cols, 3 * be);
      EXPECT_EQ(0, std::memcmp(seg.data, m.stored.data() + row * rb + 2 * dtype_block_bytes(t),
                               size_t(3 * dtype_block_bytes(t))));
    }
    // Not packed: the view's own bytes, no copy.
    EXPECT_EQ(stored_rows(m.s, 4, 5, scratch).data, m.s.row_ptr(4));
  }
}

TEST(PackedViews, RowReadersRefuseThem) {
  const Pair m(DType::q4_0, 8, 64, 1);
  const uint8_t* rows[4];
  EXPECT_THROW(m.p.row_ptr(0), Error);
  EXPECT_THROW(tile_rows(m.p, 0, rows), Error);
  EXPECT_THROW(m.p.row_range(2, 4), Error);     // not a tile edge
  const WeightView half = m.p.row_range(4, 4);  // a tile edge: a byte offset
  std::vector<uint8_t> scratch;
  EXPECT_EQ(0, std::memcmp(stored_rows(half, 0, 4, scratch).data, m.s.row_ptr(4),
                           size_t(4 * m.s.row_bytes())));
}

TEST(PackedViews, EveryIsaDequantisesThemAsStored) {
  for (DType t : kPackable) {
    const int64_t be = dtype_block_elems(t);
    const Pair m(t, 6, be * (be == 32 ? 9 : 3), 3);
    for (const IsaKernels* isa : supported_isas())
      for (int64_t row : {0, 5})
        for (int64_t col0 : {int64_t(0), be == 32 ? int64_t(96) : be}) {
          const int64_t n = m.s.cols - col0;
          std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
          const float* pa = isa->dequant(m.s, row, col0, n, a.data());
          const float* pb = isa->dequant(m.p, row, col0, n, b.data());
          EXPECT_EQ(0, std::memcmp(pa, pb, size_t(n) * sizeof(float))) << isa->name;
        }
    std::vector<float> a(static_cast<size_t>(m.s.cols)), b(static_cast<size_t>(m.s.cols));
    ref::dequant_row(m.s, 4, 0, m.s.cols, a.data());
    ref::dequant_row(m.p, 4, 0, m.s.cols, b.data());
    EXPECT_EQ(a, b);
  }
}

// Row counts with a short last tile, token counts for each path: 1 (decode), 3 (few tokens), 9
// (int8 GEMM) and 40 (AMX where present, else int8 GEMM).
TEST(PackedViews, MatmulOnThemMatchesTheStoredRows) {
  for (DType t : kPackable)
    for (int64_t rows : {13, 64})
      for (int64_t blocks : {9, 67}) {
        const int64_t be = dtype_block_elems(t);
        const int64_t cols = be == 32 ? blocks * 32 : (blocks == 9 ? 1 : 7) * 256;  // whole units
        const Pair m(t, rows, cols, uint32_t(rows + blocks));
        for (int64_t T : {1, 3, 9, 40}) {
          SCOPED_TRACE(std::string(dtype_name(t)) + " rows " + std::to_string(rows) + " cols " +
                       std::to_string(cols) + " T " + std::to_string(T));
          const std::vector<float> x = random_values(T * cols, uint32_t(T), 2.0f);
          std::vector<float> want(static_cast<size_t>(T * rows)),
              got(static_cast<size_t>(T * rows));
          for (bool serving : {false, true}) {
            const ScopedServingKernels scope(serving);
            // Where a type has a stored-row kernel but no packed one (k-quants on AVX2), a
            // packed view takes the exact path and the stored rows the integer kernel: two
            // roundings, each checked against the reference elsewhere.
            if (serving && is_k_packed(t) && !ggml_packed_dot4_kernel() && ggml_kernel_takes(t))
              continue;
            matmul(MatmulParams{x.data(), cols, want.data(), rows, T, m.s});
            matmul(MatmulParams{x.data(), cols, got.data(), rows, T, m.p});
            if (!serving || T > 4) {  // the same unpacked rows through the same kernels
              EXPECT_EQ(want, got) << (serving ? "serving" : "exact");
            } else {  // the packed decode kernel: the same integer sums, another float order
              const float tol = 1e-5f * max_abs(want) + 1e-6f;
              for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(want[i], got[i], tol) << i;
            }
          }
          // The reference decodes a whole block per weight: k-quants on the small case only.
          if (be != 32 && (rows != 13 || cols != 256)) continue;
          std::vector<float> ref_s(static_cast<size_t>(rows)), ref_p(static_cast<size_t>(rows));
          ref::matmul(x.data(), cols, m.s, ref_s.data(), rows, 1);
          ref::matmul(x.data(), cols, m.p, ref_p.data(), rows, 1);
          EXPECT_EQ(ref_s, ref_p);
        }
      }
}

// Several packed matrices in one decode group (gate and up sharing their activation, a routed
// expert's rows as a tile-aligned row range of a bigger matrix).
TEST(PackedViews, DecodeGroupsMixThemWithStoredViews) {
  const int64_t cols = 32 * 12;
  const Pair gate(DType::q4_0, 20, cols, 7), up(DType::q8_0, 20, cols, 8);
  const Pair stacked(DType::q4_0, 24, cols, 9);
  const std::vector<float> x = random_values(cols, 4, 1.5f);
  const WeightView expert_p = stacked.p.row_range(8, 8), expert_s = stacked.s.row_range(8, 8);
  std::vector<float> ys[3], yp[3];
  for (auto* v : {ys, yp})
    for (int i = 0; i < 3; ++i) v[i].assign(20, 0.0f);
  const ScopedServingKernels scope(true);
  const MatmulParams stored[3] = {{x.data(), cols, ys[0].data(), 20, 1, gate.s},
                                  {x.data(), cols, ys[1].data(), 20, 1, up.s},
                                  {x.data(), cols, ys[2].data(), 8, 1, expert_s}};
  const MatmulParams packed[3] = {{x.data(), cols, yp[0].data(), 20, 1, gate.p},
                                  {x.data(), cols, yp[1].data(), 20, 1, up.s},
                                  {x.data(), cols, yp[2].data(), 8, 1, expert_p}};
  matmul_group(stored, 3);
  matmul_group(packed, 3);
  for (int i = 0; i < 3; ++i) {
    const float tol = 1e-5f * max_abs(ys[i]) + 1e-6f;
    for (size_t j = 0; j < ys[i].size(); ++j) ASSERT_NEAR(ys[i][j], yp[i][j], tol) << i << " " << j;
  }
}
