// The low-precision training GEMM and FP8 scaling: E4M3 rounding against the byte codec, tile and
// block quantisation against numpy (tests/golden/fp8_scaling, make_fp8_scaling_fixtures.py),
// bf16 and e4m3 GEMMs against double-precision references over the same rounded inputs (every
// transpose, sizes across tiles and packing blocks, both micro-kernels, any thread count), and
// the promotion experiment: a 14-bit accumulator loses accuracy over long K unless partial sums
// are promoted every 128 products.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "formats/npy.h"
#include "kernels/fp8_scaling.h"
#include "kernels/lowp_gemm.h"

using namespace tern;
using namespace tern::kernels;

namespace {

const std::string kDir = std::string(TERN_TEST_DATA) + "/golden/fp8_scaling";

std::vector<const LowpMicroKernel*> micro_kernels() {
  std::vector<const LowpMicroKernel*> out{&lowp_micro_scalar()};
  if (lowp_micro_avx512bf16()) out.push_back(lowp_micro_avx512bf16());
  if (lowp_micro_avx2()) out.push_back(lowp_micro_avx2());
  return out;
}

// The reference packer's bf16 pair words as a kernel with pair_words 2 stores them
// (lowp_gemm.h): each value widened to f32, panels [2 kp][w] or rows [w][2 kp].
std::vector<uint32_t> as_pair_words(const std::vector<uint32_t>& words, int pair_words, int w,
                                    int64_t kp, bool rows_layout) {
  if (pair_words == 1) return words;
  std::vector<uint32_t> out(words.size() * 2);
  for (int64_t p = 0; p < kp; ++p)
    for (int i = 0; i < w; ++i) {
      const uint32_t x = words[size_t(rows_layout ? i * kp + p : p * w + i)];
      const uint32_t lo = x << 16, hi = x & 0xffff0000u;
      if (rows_layout) {
        out[size_t(i * 2 * kp + 2 * p)] = lo, out[size_t(i * 2 * kp + 2 * p + 1)] = hi;
      } else {
        out[size_t(2 * p * w + i)] = lo, out[size_t((2 * p + 1) * w + i)] = hi;
      }
    }
  return out;
}

TEST(Fp8Scaling, E4m3RoundEqualsTheByteCodec) {
  std::vector<float> vals;
  for (int b = 0; b < 256; ++b) {
    const float v = fp8_e4m3_to_f32(uint8_t(b));
    if (std::isnan(v)) continue;
    vals.push_back(v);
    vals.push_back(std::nextafter(v, 1e9f));
    vals.push_back(std::nextafter(v, -1e9f));
    if (b + 1 < 256 && !std::isnan(fp8_e4m3_to_f32(uint8_t(b + 1))))
      vals.push_back(0.5f * (v + fp8_e4m3_to_f32(uint8_t(b + 1))));  // ties
  }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> e(-14.0f, 10.0f);
  for (int i = 0; i < 20000; ++i) vals.push_back((i & 1 ? -1.0f : 1.0f) * std::exp2(e(rng)));
  for (float v : {463.9f, 464.0f, 470.0f, 1e6f, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f})
    vals.push_back(v);
  for (float v : vals) {
    const float want = fp8_e4m3_to_f32(f32_to_fp8_e4m3(v));
    ASSERT_EQ(e4m3_round(v), want) << "v=" << v;
  }
  EXPECT_TRUE(std::isnan(e4m3_round(std::nanf(""))));
}

TEST(Fp8Scaling, ScaleRule) {
  EXPECT_EQ(fp8_scale(448.0f, false), 1.0f);
  EXPECT_EQ(fp8_scale(896.0f, false), 2.0f);
  EXPECT_EQ(fp8_scale(500.0f, true), 2.0f);  // 1.116 -> next power of two
  EXPECT_EQ(fp8_scale(448.0f, true), 1.0f);  // exact powers stay
  EXPECT_EQ(fp8_scale(0.0f, false), 1.0f);
  EXPECT_EQ(fp8_scale(std::nanf(""), true), 1.0f);
}

class Fp8Fixture : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(Fp8Fixture, QuantisationEqualsNumpy) {
  const auto [blocks, pow2] = GetParam();
  const Tensor x = formats::read_npy(kDir + "/x.npy");
  const std::string tag = std::string(blocks ? "blocks" : "tiles") + (pow2 ? "_pow2" : "_plain");
  const Tensor q_want = formats::read_npy(kDir + "/q_" + tag + ".npy");
  const Tensor s_want = formats::read_npy(kDir + "/scales_" + tag + ".npy");
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  std::vector<float> q(size_t(rows * cols)), s(size_t(s_want.numel()));
  (blocks ? fp8_quantize_blocks : fp8_quantize_tiles)(x.data_as<const float>(), rows, cols, cols,
                                                      pow2, q.data(), s.data());
  for (int64_t i = 0; i < s_want.numel(); ++i)
    ASSERT_EQ(s[size_t(i)], s_want.data_as<const float>()[i]) << tag << " scale " << i;
  for (int64_t i = 0; i < rows * cols; ++i)
    ASSERT_EQ(q[size_t(i)], q_want.data_as<const float>()[i]) << tag << " value " << i;
}

INSTANTIATE_TEST_SUITE_P(All, Fp8Fixture, ::testing::Combine(::testing::Bool(), ::testing::Bool()));

struct Case {
  int64_t M, N, K;
  bool ta, tb, acc;
};

struct Operands {
  std::vector<float> A, B, C0;  // stored layouts, row strides lda, ldb, ldc
  int64_t lda, ldb, ldc;
};

Operands make(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Operands o;
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  o.lda = a_cols + 1, o.ldb = b_cols + 2, o.ldc = c.N + 3;
  o.A.assign(size_t(a_rows * o.lda), 0.0f);
  o.B.assign(size_t(b_rows * o.ldb), 0.0f);
  o.C0.assign(size_t(c.M * o.ldc), 0.0f);
  for (float& v : o.A) v = n(rng) * (1.0f + float(rng() % 5));
  for (float& v : o.B) v = n(rng) * 0.01f;
  for (float& v : o.C0) v = n(rng);
  return o;
}

// op(A) as [M, K] and op(B) as [N, K] (row-major), copied out of the stored layouts.
std::vector<float> op_a(const Case& c, const Operands& o) {
  std::vector<float> r(size_t(c.M * c.K));
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t k = 0; k < c.K; ++k)
      r[size_t(m * c.K + k)] = c.ta ? o.A[size_t(k * o.lda + m)] : o.A[size_t(m * o.lda + k)];
  return r;
}
std::vector<float> op_b(const Case& c, const Operands& o) {
  std::vector<float> r(size_t(c.N * c.K));
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t k = 0; k < c.K; ++k)
      r[size_t(n * c.K + k)] = c.tb ? o.B[size_t(n * o.ldb + k)] : o.B[size_t(k * o.ldb + n)];
  return r;
}

std::vector<float> run(const Case& c, const Operands& o, const LowpSpec& spec,
                       const LowpMicroKernel* mk, int threads) {
  std::vector<float> C = o.C0;
  ThreadPool pool(threads);
  gemm_lowp(
      {c.M, c.N, c.K, o.A.data(), o.lda, c.ta, o.B.data(), o.ldb, c.tb, C.data(), o.ldc, c.acc},
      spec, &pool, mk);
  return C;
}

// Checks C against sum_k a(m,k) b(n,k) in double (plus C0 when accumulating), within
// tol * sum |a b|; qa / qb are op(A) / op(B) as the GEMM must see them (already rounded).
void expect_close(const Case& c, const Operands& o, const std::vector<float>& C,
                  const std::vector<double>& want, const std::vector<double>& mag, double tol,
                  const std::string& what) {
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      const double base = c.acc ? o.C0[size_t(m * o.ldc + n)] : 0.0;
      const double w = base + want[size_t(m * c.N + n)];
      const double got = C[size_t(m * o.ldc + n)];
      ASSERT_NEAR(got, w, tol * (mag[size_t(m * c.N + n)] + std::fabs(base)) + 1e-30)
          << what << " at " << m << "," << n;
    }
}

const Case kCases[] = {{8, 32, 256, false, true, false},   {37, 45, 261, false, true, true},
                       {37, 45, 261, true, false, false},  {19, 70, 300, true, true, true},
                       {64, 33, 129, false, false, false}, {1, 1, 1, false, true, false},
                       {5, 3, 520, true, false, true}};

// sum_k round(a(m,k)) round(b(n,k)) in double (want) and the sum of the products' magnitudes
// (mag), for op(A) and op(B) as [M, K] and [N, K].
void double_reference(const Case& c, const std::vector<float>& a, const std::vector<float>& b,
                      float (*round)(float), std::vector<double>& want, std::vector<double>& mag) {
  want.assign(size_t(c.M * c.N), 0.0);
  mag.assign(want.size(), 0.0);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t k = 0; k < c.K; ++k) {
        const double p = double(round(a[size_t(m * c.K + k)])) * round(b[size_t(n * c.K + k)]);
        want[size_t(m * c.N + n)] += p;
        mag[size_t(m * c.N + n)] += std::fabs(p);
      }
}

float bf16_rounded(float v) {
  return bf16_to_f32(f32_to_bf16(v));
}
float unrounded(float v) {
  return v;
}

void check_bf16(const LowpMicroKernel* mk, std::span<const Case> cases) {
  for (const Case& c : cases) {
    const Operands o = make(c, uint32_t(c.M * 7 + c.K));
    std::vector<double> want, mag;
    double_reference(c, op_a(c, o), op_b(c, o), bf16_rounded, want, mag);
    for (int threads : {1, 2}) {
      const std::vector<float> C = run(c, o, {}, mk, threads);
      expect_close(c, o, C, want, mag, 2e-6, std::string(mk->name) + " bf16");
    }
  }
}

TEST(LowpGemm, Bf16MatchesDoubleReferenceOnRoundedInputs) {
  for (const LowpMicroKernel* mk : micro_kernels()) check_bf16(mk, kCases);
}

// The dequantised-E4M3 reference: op(A) and op(B) quantised with the numpy-checked reference
// functions (tiles along K of each op row, or 128 x 128 blocks), summed per 128-chunk.
void check_e4m3(const LowpSpec& spec, const LowpMicroKernel* mk,
                std::span<const Case> cases = kCases) {
  for (const Case& c : cases) {
    const Operands o = make(c, uint32_t(c.N * 5 + c.K));
    const std::vector<float> a = op_a(c, o), b = op_b(c, o);
    const int64_t kt = (c.K + 127) / 128;
    std::vector<float> qa(a.size()), qb(b.size());
    std::vector<float> sa(size_t(c.M * kt)), sb(size_t(c.N * kt));
    (spec.a_group == Fp8Group::tile ? fp8_quantize_tiles : fp8_quantize_blocks)(
        a.data(), c.M, c.K, c.K, spec.pow2_scales, qa.data(), sa.data());
    (spec.b_group == Fp8Group::tile ? fp8_quantize_tiles : fp8_quantize_blocks)(
        b.data(), c.N, c.K, c.K, spec.pow2_scales, qb.data(), sb.data());
    auto scale = [&](const std::vector<float>& s, Fp8Group g, int64_t i, int64_t t) {
      return double(s[size_t((g == Fp8Group::tile ? i : i / 128) * kt + t)]);
    };
    std::vector<double> want(size_t(c.M * c.N)), mag(want.size());
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t k = 0; k < c.K; ++k) {
          const double p = double(qa[size_t(m * c.K + k)]) * qb[size_t(n * c.K + k)] *
                           scale(sa, spec.a_group, m, k / 128) *
                           scale(sb, spec.b_group, n, k / 128);
          want[size_t(m * c.N + n)] += p;
          mag[size_t(m * c.N + n)] += std::fabs(p);
        }
    for (int threads : {1, 2}) {
      const std::vector<float> C = run(c, o, spec, mk, threads);
      expect_close(c, o, C, want, mag, 2e-6, std::string(mk->name) + " e4m3");
    }
  }
}

TEST(LowpGemm, E4m3MatchesDequantisedReference) {
  for (const LowpMicroKernel* mk : micro_kernels()) {
    LowpSpec spec;
    spec.format = LowpFormat::e4m3;
    check_e4m3(spec, mk);  // activations x weights: tiles x blocks
    spec.b_group = Fp8Group::tile;
    check_e4m3(spec, mk);  // the weight gradient: both operands in tiles along tokens
    spec.a_group = Fp8Group::block;
    spec.pow2_scales = true;
    check_e4m3(spec, mk);
  }
}

// LowpFormat::f32 (kernels with f32 packs): the unrounded product, within f32 summation error
// of a double reference, any thread count giving the same bits, also cut into K blocks; gemm()
// takes this route where the AVX2 kernel is the best f32 one and returns the same bits.
TEST(LowpGemm, F32FormatComputesTheUnroundedProduct) {
  std::vector<Case> cases(std::begin(kCases), std::end(kCases));
  cases.push_back({300, 200, 1500, true, false, true});  // K cut into blocks
  for (const LowpMicroKernel* mk : micro_kernels()) {
    if (mk->pair_words != 2) continue;
    LowpSpec spec;
    spec.format = LowpFormat::f32;
    for (const Case& c : cases) {
      const Operands o = make(c, uint32_t(c.N * 5 + c.K));
      std::vector<double> want, mag;
      double_reference(c, op_a(c, o), op_b(c, o), unrounded, want, mag);
      const std::vector<float> one = run(c, o, spec, mk, 1), two = run(c, o, spec, mk, 2);
      ASSERT_EQ(one, two) << mk->name;
      expect_close(c, o, one, want, mag, 2e-6 * std::sqrt(double(c.K)), mk->name);
      if (mk == &lowp_micro_active() && &gemm_micro_active() == gemm_micro_avx2()) {
        std::vector<float> C = o.C0;
        ThreadPool pool(2);
        gemm({c.M, c.N, c.K, o.A.data(), o.lda, c.ta, o.B.data(), o.ldb, c.tb, C.data(), o.ldc,
              c.acc},
             &pool);
        ASSERT_EQ(C, one) << "gemm() on the f32 route";
      }
    }
  }
}

// Small products take all of K in one packed block; packs over 2 MB are cut into blocks of K
// (lowp_gemm.cpp): these shapes take several blocks, with a partial last one.
TEST(LowpGemm, DeepProductsCutIntoKBlocksMatchTheReference) {
  const Case deep[] = {{40, 1000, 1300, false, true, true}, {33, 1030, 1100, true, false, false}};
  const LowpMicroKernel* mk = &lowp_micro_active();
  check_bf16(mk, deep);
  LowpSpec spec;
  spec.format = LowpFormat::e4m3;
  check_e4m3(spec, mk, deep);
}

// Each SIMD packer writes the same words and scales as the scalar one, for both layouts, bf16
// and e4m3 (tile and block scales), partial panels, odd depths and panel widths that are and
// are not multiples of 16.
TEST(LowpGemm, SimdPackersEqualTheReference) {
  std::mt19937 rng(9);
  std::normal_distribution<float> n(0.0f, 3.0f);
  std::vector<float> x(400 * 400);
  for (float& v : x) v = n(rng) * float(1 + rng() % 100);
  x[7] = 0.0f;
  std::vector<float> grid(9, 0.0f);
  for (float& g : grid) g = 0.01f * float(1 + rng() % 50);
  for (const LowpMicroKernel* mk : micro_kernels())
    for (int layout = 0; layout < 3; ++layout)  // k-contiguous, k-contiguous as rows, strided
      for (int fmt = 0; fmt < 4; ++fmt)         // bf16, e4m3 tiles, e4m3 blocks, e4m3 tiles pow2
        for (int64_t rows : {int64_t(mk->mr), int64_t(3), int64_t(20)})
          for (int64_t kb : {int64_t(256), int64_t(131), int64_t(7)})
            for (const int w : {mk->nr, mk->mr, 24}) {  // B panels, A panels, 16 + a remainder
              if (rows > w) continue;
              LowpPanel j{};
              const bool contiguous = layout < 2;
              j.p = x.data(), j.ld = 400, j.k_contiguous = contiguous, j.i0 = 5, j.rows = rows;
              j.rows_layout = layout == 1;
              j.w = w, j.k0 = 128, j.kb = kb, j.e4m3 = fmt > 0, j.pow2 = fmt == 3, j.chunk = 128;
              j.grid = fmt == 2 ? grid.data() : nullptr, j.grid_k = 3;
              const int64_t kp = (kb + 1) / 2;
              std::vector<uint32_t> d1(size_t(kp * w), 7), d2(size_t(kp * w * mk->pair_words), 7);
              std::vector<float> s1(size_t(2 * w), -1), s2(s1);
              j.dst = d1.data(), j.scales = s1.data();
              lowp_pack_ref(j);
              d1 = as_pair_words(d1, mk->pair_words, w, kp, j.rows_layout);
              j.dst = d2.data(), j.scales = s2.data();
              mk->pack(j);
              size_t bad = 0;
              while (bad < d1.size() && d1[bad] == d2[bad]) ++bad;
              ASSERT_EQ(d1, d2) << "first difference at word " << bad << ": " << mk->name
                                << " layout " << layout << " fmt " << fmt << " rows " << rows
                                << " kb " << kb;
              if (fmt > 0) {
                ASSERT_EQ(s1, s2) << mk->name;
              }
            }
}

// Each sweep (the scalar one and the SIMD one) writes, for every panel, the words the per-panel
// reference packer writes: partial last panels, odd depths, pieces of the pair range.
TEST(LowpGemm, SweepsEqualThePerPanelReference) {
  std::mt19937 rng(13);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(400 * 400);
  for (float& v : x) v = nd(rng);
  for (const LowpMicroKernel* mk : micro_kernels()) {
    ASSERT_NE(mk->sweep, nullptr) << mk->name;
    for (int w : {mk->mr, mk->nr})
      for (int64_t n : {int64_t(3 * w), int64_t(3 * w - 5), int64_t(5), int64_t(w + 1)})
        for (int64_t kb : {int64_t(256), int64_t(131), int64_t(7)}) {
          const int64_t kp = (kb + 1) / 2, panels = (n + w - 1) / w;
          const int64_t stride = w * kp * mk->pair_words + 3;
          std::vector<uint32_t> want(size_t(panels * stride), 7u), got(want);
          for (int64_t q = 0; q < panels; ++q) {
            LowpPanel j{};
            std::vector<uint32_t> words(size_t(w * kp));
            j.p = x.data(), j.ld = 400, j.k_contiguous = false, j.i0 = q * w;
            j.rows = std::min<int64_t>(w, n - q * w), j.w = w, j.k0 = 128, j.kb = kb;
            j.chunk = 128, j.dst = words.data();
            std::vector<float> scales(size_t(2 * w));
            j.scales = scales.data();
            lowp_pack_ref(j);
            words = as_pair_words(words, mk->pair_words, w, kp, false);
            std::copy(words.begin(), words.end(), want.begin() + q * stride);
          }
          const int64_t mid = kp / 2 + 1;
          for (auto [p0, p1] : {std::pair{int64_t(0), mid}, std::pair{mid, kp}})
            mk->sweep({x.data(), 400, n, w, 128, kb, p0, std::min(p1, kp), got.data(), stride});
          ASSERT_EQ(want, got) << mk->name << " w " << w << " n " << n << " kb " << kb;
        }
  }
}

// The SIMD kernels within rounding of the scalar one (the AVX2 one bit for bit), and neither the
// thread count nor the A layout changes a bit.
TEST(LowpGemm, MicroKernelsAgreeAndThreadsDoNotChangeBits) {
  const auto mks = micro_kernels();
  for (const Case& c : kCases) {
    const Operands o = make(c, 11);
    for (LowpFormat f : {LowpFormat::bf16, LowpFormat::e4m3})
      for (Accumulator acc : {Accumulator::f32, Accumulator::limited14}) {
        LowpSpec spec;
        spec.format = f;
        spec.accumulator = acc;
        const std::vector<float> ref = run(c, o, spec, mks.front(), 1);
        for (const LowpMicroKernel* mk : mks) {
          const std::vector<float> one = run(c, o, spec, mk, 1), two = run(c, o, spec, mk, 2);
          ASSERT_EQ(one, two) << mk->name;
          // f32 packs on FMAs add each exact product in the scalar kernel's order.
          if (mk->pair_words == 2) {
            size_t bad = 0;
            while (bad < ref.size() && one[bad] == ref[bad]) ++bad;
            ASSERT_EQ(one, ref) << mk->name << " M " << c.M << " N " << c.N << " K " << c.K
                                << " e4m3 " << (f == LowpFormat::e4m3) << " limited "
                                << (acc == Accumulator::limited14) << " first difference at " << bad
                                << ": " << one[bad] - ref[bad] << " of " << ref[bad];
          }
          for (size_t i = 0; i < ref.size(); ++i)
            ASSERT_NEAR(one[i], ref[i], 1e-3f * (std::fabs(ref[i]) + 1e-3f))
                << mk->name << " " << i;
          // The A layout the kernel does not ask for (rows vs panels) gives the same bits.
          LowpMicroKernel other = *mk;
          other.a_rows = !mk->a_rows;
          ASSERT_EQ(run(c, o, spec, &other, 1), one) << mk->name << " with a_rows flipped";
        }
      }
  }
}

// Both bf16 layouts of awkward row blocks and widths, SIMD against the scalar reference word
// for word, and nothing written outside them (the buffers start poisoned).
TEST(LowpGemm, Bf16LayoutsEqualTheReference) {
  constexpr uint32_t kPoison = 0xdeadbeefu;
  for (const LowpMicroKernel* mk : micro_kernels()) {
    if (!mk->bf16_layouts) continue;
    for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{1, 1},
                                     {2, 16},
                                     {7, 33},
                                     {33, 17},
                                     {40, 64},
                                     {64, 129},
                                     {35, 300}}) {
      std::mt19937 rng(uint32_t(rows * 131 + cols));
      std::normal_distribution<float> n(0.0f, 3.0f);
      const int64_t ld = cols + 5, rs = (cols + 1) / 2 + 3, ps = (rows + 1) / 2 + 7;
      std::vector<float> x(size_t(rows * ld));
      for (float& v : x) v = n(rng);
      for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, rows},
                                   {0, rows / 2 * 2},
                                   {rows / 4 * 2, rows},
                                   {2, std::min<int64_t>(rows, 35)}}) {
        if (r0 > r1) continue;
        std::vector<uint32_t> want_r(size_t(rows * rs), kPoison),
            want_p(size_t(cols * ps), kPoison);
        std::vector<uint32_t> got_r = want_r, got_p = want_p;
        lowp_bf16_layouts_ref({x.data(), ld, cols, r0, r1, want_r.data(), rs, want_p.data(), ps});
        lowp_bf16_layouts({x.data(), ld, cols, r0, r1, got_r.data(), rs, got_p.data(), ps}, mk);
        ASSERT_EQ(got_r, want_r) << mk->name << " rows " << rows << "x" << cols << " [" << r0
                                 << ", " << r1 << ")";
        ASSERT_EQ(got_p, want_p) << mk->name << " pairs " << rows << "x" << cols << " [" << r0
                                 << ", " << r1 << ")";
        // The reference itself: the values land where the layouts say.
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            const uint16_t want = f32_to_bf16(x[size_t(r * ld + c)]);
            ASSERT_EQ(uint16_t(want_r[size_t(r * rs + c / 2)] >> (c % 2 * 16)), want);
            ASSERT_EQ(uint16_t(want_p[size_t(c * ps + r / 2)] >> (r % 2 * 16)), want);
          }
        if (r1 % 2 == 1) {
          for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(want_p[size_t(c * ps + r1 / 2)] >> 16, 0u);
        }
      }
    }
  }
}

// A from either bf16 layout gives the bits of the GEMM that packs the f32 A itself: every case
// (transposed A from the pairs layout, padded rows, odd K), any thread count; products too short
// for the row-block driver and, past 512 rows, through it, with K in one block and (packs past
// 2 MB) in five.
TEST(LowpGemm, RowsAGemmEqualsThePackingGemm) {
  std::vector<Case> cases(std::begin(kCases), std::end(kCases));
  cases.push_back({1000, 64, 1100, true, false, true});
  cases.push_back({999, 70, 1101, false, true, false});
  cases.push_back({777, 45, 261, true, true, true});
  for (const LowpMicroKernel* mk : micro_kernels()) {
    if (!lowp_rows_a_supported({}, mk)) continue;
    for (const Case& c : cases) {
      const Operands o = make(c, 23);
      const int64_t stride = (c.K + 1) / 2 + 16,
                    padded = (c.M + kLowpRowsPad - 1) / kLowpRowsPad * kLowpRowsPad;
      std::vector<uint32_t> words(size_t(padded * stride), 0u);
      if (c.ta)  // stored [K][M]: op-row m is column m, its pairs run down the rows
        lowp_bf16_layouts({o.A.data(), o.lda, c.M, 0, c.K, nullptr, 0, words.data(), stride}, mk);
      else
        lowp_bf16_layouts({o.A.data(), o.lda, c.K, 0, c.M, words.data(), stride, nullptr, 0}, mk);
      const std::vector<float> want = run(c, o, {}, mk, 1);
      for (int threads : {1, 2}) {
        std::vector<float> C = o.C0;
        ThreadPool pool(threads);
        gemm_lowp_rows_a(
            {c.M, c.N, c.K, nullptr, 0, false, o.B.data(), o.ldb, c.tb, C.data(), o.ldc, c.acc},
            {words.data(), stride}, {}, &pool, mk);
        ASSERT_EQ(C, want) << mk->name << " M " << c.M << " N " << c.N << " K " << c.K << " ta "
                           << c.ta << " threads " << threads;
      }
    }
  }
  LowpSpec e4m3;
  e4m3.format = LowpFormat::e4m3;
  EXPECT_FALSE(lowp_rows_a_supported(e4m3));
}

// B packed once and multiplied on the caller's thread gives gemm_lowp's bits: every case, a depth
// prefix of a deeper packed B (as attention's row blocks read their keys), and K past 256 with
// large operands, where gemm_lowp sums K block by block (the SIMD kernel only: the scalar one
// would take seconds).
TEST(LowpGemm, PackedBProductsEqualThePackingGemm) {
  for (const LowpMicroKernel* mk : micro_kernels()) {
    if (!lowp_rows_a_supported({}, mk)) continue;
    std::vector<Case> cases(std::begin(kCases), std::end(kCases));
    if (mk != &lowp_micro_scalar()) cases.push_back({1500, 300, 600, false, true, true});
    for (const Case& c : cases) {
      for (const int64_t depth : {c.K, c.K + 7}) {  // B packed over depth, the product over c.K
        if (depth != c.K && c.K % 2) continue;
        const Case packed{c.M, c.N, depth, c.ta, c.tb, c.acc};
        const Operands o = make(packed, 41);
        const int64_t stride = (depth + 1) / 2,
                      padded = (c.M + kLowpRowsPad - 1) / kLowpRowsPad * kLowpRowsPad;
        std::vector<uint32_t> words(size_t(padded * stride), 0u);
        if (c.ta)
          lowp_bf16_layouts({o.A.data(), o.lda, c.M, 0, depth, nullptr, 0, words.data(), stride},
                            mk);
        else
          lowp_bf16_layouts({o.A.data(), o.lda, depth, 0, c.M, words.data(), stride, nullptr, 0},
                            mk);
        const std::vector<float> want = run(c, o, {}, mk, 1);  // K = c.K of the deeper operands
        LowpPackedB b;
        lowp_pack_b(o.B.data(), o.ldb, c.tb, c.N, depth, b, mk);
        std::vector<float> C = o.C0;
        gemm_lowp_packed({words.data(), stride}, c.M, c.N, c.K, b, C.data(), o.ldc, c.acc, mk);
        ASSERT_EQ(C, want) << mk->name << " M " << c.M << " N " << c.N << " K " << c.K << " depth "
                           << depth << " ta " << c.ta << " tb " << c.tb;
      }
    }
  }
}

// The row-block driver gives gemm_lowp's bits (bf16, and E4M3 with each experiment switch),
// and each block's rows are final when its callback runs (checked inside the callback), every row
// exactly once.
TEST(LowpGemm, RowBlocksEqualTheWholeProductAndHandOverFinishedRows) {
  for (const LowpMicroKernel* mk : micro_kernels())
    for (const Case& c : kCases) {
      if (c.ta) continue;
      const Operands o = make(c, 31);
      // The training GEMMs with A in rows take this driver, the FP8 experiment's switches too.
      LowpSpec e4m3, limited, unpromoted, fine_b;
      e4m3.format = limited.format = unpromoted.format = fine_b.format = LowpFormat::e4m3;
      limited.accumulator = Accumulator::limited14;
      unpromoted.promote_every = 0;
      fine_b.b_group = Fp8Group::tile;
      fine_b.pow2_scales = true;
      for (const LowpSpec& spec : {LowpSpec{}, e4m3, limited, unpromoted, fine_b}) {
        const std::vector<float> want = run(c, o, spec, mk, 1);
        for (int64_t block_rows : {int64_t(1), int64_t(16), int64_t(37)})
          for (int threads : {1, 2}) {
            std::vector<float> C = o.C0;
            std::vector<int> seen(size_t(c.M), 0);
            std::mutex mu;
            bool early = false;
            ThreadPool pool(threads);
            gemm_lowp_row_blocks(
                {c.M, c.N, c.K, o.A.data(), o.lda, false, o.B.data(), o.ldb, c.tb, C.data(), o.ldc,
                 c.acc},
                spec, block_rows,
                [&](int64_t r0, int64_t r1, float* rows) {
                  const std::lock_guard lock(mu);
                  early |= rows != C.data() + r0 * o.ldc;
                  for (int64_t r = r0; r < r1; ++r) {
                    ++seen[size_t(r)];
                    for (int64_t n = 0; n < c.N; ++n)
                      early |= C[size_t(r * o.ldc + n)] != want[size_t(r * o.ldc + n)];
                  }
                },
                &pool, mk);
            // C null: the rows come in the thread's own block buffer, with the same bits.
            if (!c.acc) {
              std::vector<float> got(C.size(), 0.0f);
              gemm_lowp_row_blocks(
                  {c.M, c.N, c.K, o.A.data(), o.lda, false, o.B.data(), o.ldb, c.tb, nullptr, o.ldc,
                   false},
                  spec, block_rows,
                  [&](int64_t r0, int64_t r1, float* rows) {
                    const std::lock_guard lock(mu);
                    for (int64_t r = r0; r < r1; ++r)
                      std::copy_n(rows + (r - r0) * o.ldc, c.N, got.data() + r * o.ldc);
                  },
                  &pool, mk);
              for (int64_t r = 0; r < c.M; ++r)
                for (int64_t n = 0; n < c.N; ++n)
                  ASSERT_EQ(got[size_t(r * o.ldc + n)], want[size_t(r * o.ldc + n)])
                      << mk->name << " C null, row " << r;
            }
            const std::string what = std::string(mk->name) + " M " + std::to_string(c.M) + " K " +
                                     std::to_string(c.K) + " block " + std::to_string(block_rows);
            EXPECT_FALSE(early) << what;
            EXPECT_EQ(seen, std::vector<int>(size_t(c.M), 1)) << what;
            ASSERT_EQ(C, want) << what << " threads " << threads;
          }
      }
    }
}

// DeepSeek-V3 reports that Hopper's ~14-bit accumulation loses about 2% over K = 4096 unless
// partial sums are promoted to f32 every 128 products. The emulated accumulator shows the same.
TEST(LowpGemm, PromotionEvery128BoundsTheLimitedAccumulatorError) {
  const Case c{4, 32, 4096, false, true, false};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Operands o;
  o.lda = o.ldb = c.K, o.ldc = c.N;
  o.A.resize(size_t(c.M * c.K)), o.B.resize(size_t(c.N * c.K)), o.C0.assign(size_t(c.M * c.N), 0);
  for (float& v : o.A) v = u(rng);
  for (float& v : o.B) v = u(rng);
  auto rel_err = [&](Accumulator acc, int64_t promote) {
    LowpSpec spec;
    spec.format = LowpFormat::e4m3;
    spec.b_group = Fp8Group::tile;
    spec.accumulator = acc;
    spec.promote_every = promote;
    LowpSpec exact = spec;
    exact.accumulator = Accumulator::f32;
    const std::vector<float> got = run(c, o, spec, nullptr, 2);
    const std::vector<float> ref = run(c, o, exact, nullptr, 2);
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, std::fabs(double(got[i]) - ref[i]) / std::fabs(double(ref[i])));
    return worst;
  };
  const double never = rel_err(Accumulator::limited14, 0);
  const double every128 = rel_err(Accumulator::limited14, 128);
  std::printf(
      "14-bit accumulator over K=4096: max relative error %.3g%% without promotion, "
      "%.3g%% promoting every 128\n",
      100 * never, 100 * every128);
  EXPECT_GT(never, 5e-3);
  EXPECT_LT(every128, 1e-3);
  EXPECT_GT(never, 8 * every128);
}

}  // namespace
