// Exhaustive checks of the scalar dtype conversions: every bit pattern round-trips, and
// f32 -> narrow rounding is compared with a brute-force "nearest representable, ties to even
// code" search over all decoded values (an independent oracle, not the same algorithm).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

using namespace tern;

namespace {

float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Nearest finite value by brute force over a table of (code, value) pairs; ties go to the even
// code. Returns the code.
template <typename Code>
Code nearest_code(float x, const std::vector<std::pair<Code, float>>& table) {
  Code best = 0;
  double best_err = INFINITY;
  for (auto [code, v] : table) {
    const double err = std::fabs(double(v) - double(x));
    if (err < best_err || (err == best_err && (code & 1) == 0 && (best & 1) == 1)) {
      best = code;
      best_err = err;
    }
  }
  return best;
}

template <typename Code, typename Dec>
std::vector<std::pair<Code, float>> positive_finite_table(int n_codes, Dec decode) {
  std::vector<std::pair<Code, float>> t;
  for (int c = 0; c < n_codes; ++c) {
    const float v = decode(Code(c));
    if (std::isfinite(v) && !std::signbit(v)) t.push_back({Code(c), v});
  }
  return t;
}

}  // namespace

TEST(Bf16, AllPatternsRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      EXPECT_EQ(f32_to_bf16(f) & 0x8000, h & 0x8000) << "NaN keeps its sign";
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), h) << "pattern " << h;
  }
}

TEST(Bf16, RoundsToNearestEvenAtEveryMidpoint) {
  // Between bf16 codes h and h+1 the f32 midpoint has low half 0x8000: it must go to the even one.
  for (uint32_t h = 0; h < 0x7F80; ++h) {
    const uint32_t mid = (h << 16) | 0x8000;
    const uint16_t expect_mid = (h & 1) ? uint16_t(h + 1) : uint16_t(h);
    ASSERT_EQ(f32_to_bf16(bits_to_f32(mid)), expect_mid) << h;
    ASSERT_EQ(f32_to_bf16(bits_to_f32(mid + 1)), uint16_t(h + 1)) << h;
    ASSERT_EQ(f32_to_bf16(bits_to_f32(mid - 1)), uint16_t(h)) << h;
  }
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7F7FFFFF)), 0x7F80) << "max f32 rounds up to inf";
}

TEST(F16, AllPatternsRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "pattern " << h;
  }
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  // Every pattern against the format's definition: (-1)^s 2^(e - 15) (1 + m / 1024), subnormals
  // 2^-14 (m / 1024), e = 31 infinity or NaN.
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t e = (h >> 10) & 31, m = h & 1023;
    const float mag = e == 31  ? (m ? NAN : INFINITY)
                      : e == 0 ? std::ldexp(float(m), -24)
                               : std::ldexp(float(1024 + m), int(e) - 25);
    const float want = (h >> 15) ? -mag : mag;
    const float got = f16_to_f32(uint16_t(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << h;
      continue;
    }
    ASSERT_EQ(std::signbit(got), std::signbit(want)) << h;
    ASSERT_EQ(got, want) << h;
  }
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
}

TEST(F16, RoundsToNearestEvenAtEveryMidpoint) {
  for (uint32_t h = 0; h < 0x7BFF; ++h) {
    const float lo = f16_to_f32(uint16_t(h)), hi = f16_to_f32(uint16_t(h + 1));
    const float mid = (lo + hi) / 2;  // exact in f32 (f16 has 11 significant bits)
    ASSERT_EQ(f32_to_f16(mid), (h & 1) ? h + 1 : h) << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, INFINITY)), h + 1) << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 0.0f)), h) << h;
  }
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00) << "midpoint above max finite overflows to inf";
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xFC00);
}

TEST(Fp8E4m3, AllPatternsDecodeAndRoundTrip) {
  int nans = 0;
  for (int b = 0; b < 256; ++b) {
    const float f = fp8_e4m3_to_f32(uint8_t(b));
    if (std::isnan(f)) {
      ++nans;
      EXPECT_EQ(b & 0x7F, 0x7F);
      continue;
    }
    ASSERT_EQ(f32_to_fp8_e4m3(f), b) << b;
  }
  EXPECT_EQ(nans, 2) << "only S.1111.111 is NaN; e4m3fn has no infinities";
  EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6)) << "min normal";
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9)) << "min subnormal";
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
}

TEST(Fp8E4m3, RoundingMatchesBruteForceAndSaturates) {
  const auto table = positive_finite_table<uint8_t>(128, fp8_e4m3_to_f32);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> log_mag(-12.0f, 9.5f);
  for (int i = 0; i < 200000; ++i) {
    const float x = std::exp2(log_mag(rng));
    const float clamped = std::min(x, 448.0f);
    ASSERT_EQ(f32_to_fp8_e4m3(x), nearest_code(clamped, table)) << x;
    ASSERT_EQ(f32_to_fp8_e4m3(-x), 0x80 | nearest_code(clamped, table)) << -x;
  }
  // Every midpoint between neighbours ties to the even code.
  for (size_t i = 0; i + 1 < table.size(); ++i) {
    const float mid = (table[i].second + table[i + 1].second) / 2;
    const uint8_t even = (table[i].first & 1) ? table[i + 1].first : table[i].first;
    ASSERT_EQ(f32_to_fp8_e4m3(mid), even) << mid;
  }
  EXPECT_EQ(f32_to_fp8_e4m3(1e6f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(INFINITY), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(-INFINITY), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(NAN) & 0x7F, 0x7F);
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00) << "half of min subnormal ties to 0";
}

TEST(Fp8E5m2, AllPatternsDecodeAndRoundTrip) {
  int nans = 0, infs = 0;
  for (int b = 0; b < 256; ++b) {
    const float f = fp8_e5m2_to_f32(uint8_t(b));
    if (std::isnan(f)) {
      ++nans;
      continue;
    }
    if (std::isinf(f)) ++infs;
    ASSERT_EQ(f32_to_fp8_e5m2(f), b) << b;
  }
  EXPECT_EQ(nans, 6);
  EXPECT_EQ(infs, 2);
  EXPECT_EQ(fp8_e5m2_to_f32(0x7B), 57344.0f);
  EXPECT_EQ(fp8_e5m2_to_f32(0x01), std::ldexp(1.0f, -16));
}

TEST(Fp8E5m2, RoundingMatchesBruteForceAndOverflowsToInf) {
  const auto table = positive_finite_table<uint8_t>(128, fp8_e5m2_to_f32);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> log_mag(-18.0f, 15.8f);
  for (int i = 0; i < 200000; ++i) {
    const float x = std::exp2(log_mag(rng));
    if (x >= 61440.0f) continue;  // rounds past max finite: checked below
    ASSERT_EQ(f32_to_fp8_e5m2(x), nearest_code(x, table)) << x;
  }
  EXPECT_EQ(f32_to_fp8_e5m2(61440.0f), 0x7C) << "midpoint above max ties to 'even' = inf";
  EXPECT_EQ(f32_to_fp8_e5m2(61439.0f), 0x7B);
  EXPECT_EQ(f32_to_fp8_e5m2(-INFINITY), 0xFC);
}

TEST(DType, BlockSizesAndNames) {
  EXPECT_EQ(dtype_bytes_for(DType::q8_0, 64), 68);
  EXPECT_EQ(dtype_bytes_for(DType::q4_0, 32), 18);
  EXPECT_EQ(dtype_bytes_for(DType::bf16, 3), 6);
  EXPECT_THROW(dtype_bytes_for(DType::q4_0, 33), Error);
  DType t;
  EXPECT_TRUE(dtype_from_name("f8_e4m3", &t));
  EXPECT_EQ(t, DType::f8_e4m3);
  EXPECT_FALSE(dtype_from_name("f7", &t));
}
