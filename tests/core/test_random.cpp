// The counter-based generator: Philox4x32-10 known answers from Random123's kat_vectors, pinned
// normal draws (bits also reproduced by an independent Python model of the algorithm), address
// independence, and the distribution checked against libm's erfc (an oracle only the test uses).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/random.h"

using namespace tern::rng;

namespace {

double phi_cdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

uint64_t bits_of(double x) {
  return std::bit_cast<uint64_t>(x);
}
uint32_t bits_of(float x) {
  return std::bit_cast<uint32_t>(x);
}

}  // namespace

// Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter (4 words), key (2 words)
// -> output (4 words).
TEST(Random, PhiloxKnownAnswers) {
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(
      philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
      (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(
      philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
      (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

// Word w of (seed, stream) is lane w % 4 of the block at counter {w / 4, stream}, key seed.
TEST(Random, WordLayout) {
  const uint64_t seed = 0x0123456789abcdefull, stream = 0xfedcba9876543210ull;
  const PhiloxCounter b = philox4x32_10({5, 0, 0x76543210, 0xfedcba98}, {0x89abcdef, 0x01234567});
  for (uint64_t lane = 0; lane < 4; ++lane) EXPECT_EQ(word(seed, stream, 20 + lane), b[lane]);
  // The top half of a 64-bit index reaches the counter's second word.
  const PhiloxCounter hi = philox4x32_10({0, 1, 0, 0}, {0, 0});
  EXPECT_EQ(word(0, 0, uint64_t(4) << 32), hi[0]);
}

// Bits pinned from this implementation and reproduced independently (a Python model of the same
// algorithm, IEEE doubles, no FMA). A change here means every seeded init and run changes.
TEST(Random, PinnedNormalBits) {
  struct Case {
    uint64_t seed, stream, index, f64;
    uint32_t f32;
  };
  const Case cases[] = {
      {0, 0, 0, 0xbfd05f49f2274778ull, 0xbe82fa50u},
      {0, 0, 1, 0x3fe42a76ea900f80ull, 0x3f2153b7u},
      {42, 7, 3, 0x3fc3e34906516c89ull, 0x3e1f1a48u},
      {42, 7, 12, 0xc00b7ca867e8fdd2ull, 0xc05be543u},  // lower tail: uses portable_log
      {1234, stream_id("model.embed_tokens.weight"), 1000003, 0x3feedf846aee9e4aull, 0x3f76fc23u},
      {~0ull, ~0ull, 1ull << 63, 0x3fe85301ef1065e3ull, 0x3f42980fu},
  };
  for (const Case& c : cases) {
    const double z = normal(c.seed, c.stream, c.index);
    EXPECT_EQ(bits_of(z), c.f64) << c.seed << "/" << c.stream << "/" << c.index;
    EXPECT_EQ(bits_of(float(z)), c.f32) << c.seed << "/" << c.stream << "/" << c.index;
  }
}

// FNV-1a 64 reference values (offset basis for "", and the published "a" and "foobar").
TEST(Random, StreamIdIsFnv1a) {
  EXPECT_EQ(stream_id(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(stream_id("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(stream_id("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(stream_id("model.embed_tokens.weight"), 0xa88fd795d5c6d156ull);
}

// A value depends only on its address: chunked fills in any order, single draws and the
// sequential wrapper agree bit for bit.
TEST(Random, AddressingIsOrderIndependent) {
  const uint64_t seed = 99, stream = stream_id("x");
  const size_t n = 1001;
  std::vector<float> whole(n), pieces(n);
  fill_normal(seed, stream, 0, whole.data(), n, 0.5, 0.02);
  // Odd-sized chunks, visited back to front, starting on odd indices.
  for (size_t end = n; end > 0;) {
    const size_t begin = end >= 37 ? end - 37 : 0;
    fill_normal(seed, stream, begin, pieces.data() + begin, end - begin, 0.5, 0.02);
    end = begin;
  }
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(bits_of(whole[i]), bits_of(pieces[i])) << i;
    ASSERT_EQ(bits_of(whole[i]), bits_of(float(0.5 + 0.02 * normal(seed, stream, i)))) << i;
  }
  Stream s(seed, stream);
  for (uint64_t i = 0; i < 100; ++i)
    ASSERT_EQ(bits_of(s.next_normal()), bits_of(normal(seed, stream, i)));
  Stream w(seed, stream);
  for (uint64_t i = 0; i < 100; ++i) ASSERT_EQ(w.next_word(), word(seed, stream, i));
}

// Mixed sequential draws never share words: a float at an odd word pushes the next pair along.
TEST(Random, StreamMixingDoesNotReuseWords) {
  Stream s(1, 2);
  EXPECT_EQ(bits_of(s.next_float()), bits_of(uniform_float(1, 2, 0)));    // word 0
  EXPECT_EQ(bits_of(s.next_double()), bits_of(uniform_double(1, 2, 1)));  // words 2, 3
  EXPECT_EQ(s.position(), 4u);
  EXPECT_EQ(bits_of(s.next_float()), bits_of(uniform_float(1, 2, 4)));  // word 4
  EXPECT_EQ(bits_of(s.next_normal()), bits_of(normal(1, 2, 3)));        // words 6, 7
  EXPECT_EQ(s.position(), 8u);
}

TEST(Random, SeedsAndStreamsDiffer) {
  int same_seed = 0, same_stream = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    same_seed += word(1, 5, i) == word(2, 5, i);
    same_stream += word(1, 5, i) == word(1, 6, i);
  }
  // Independent 32-bit words collide with probability 2^-32 each.
  EXPECT_EQ(same_seed, 0);
  EXPECT_EQ(same_stream, 0);
}

TEST(Random, UniformRanges) {
  double sum_f = 0, sum_d = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const float f = uniform_float(3, 4, uint64_t(i));
    const double d = uniform_double(3, 4, uint64_t(i));
    const double o = uniform_open(3, 4, uint64_t(i));
    ASSERT_TRUE(f >= 0.0f && f < 1.0f);
    ASSERT_TRUE(d >= 0.0 && d < 1.0);
    ASSERT_TRUE(o > 0.0 && o < 1.0);
    sum_f += f;
    sum_d += d;
  }
  // Mean of U(0,1) has standard error sqrt(1/12/n) = 6.5e-4; allow 5 of them.
  EXPECT_NEAR(sum_f / n, 0.5, 3.3e-3);
  EXPECT_NEAR(sum_d / n, 0.5, 3.3e-3);
}

// portable_log against libm: both should be within a couple of ulps of the true value.
TEST(Random, PortableLogMatchesLibm) {
  for (double x : {1e-300, 2.2250738585072014e-308, 0x1p-54, 1e-10, 0.02425, 0.5, 0.7071067811865,
                   0.99999999, 1.0, 1.00000001, 1.4142135623730951, 1.4142135623730952, 2.0, 10.0,
                   1e10, 1.7976931348623157e308}) {
    const double want = std::log(x);
    EXPECT_NEAR(portable_log(x), want, 4e-16 * std::fabs(want) + 1e-300) << x;
  }
  EXPECT_EQ(portable_log(1.0), 0.0);
  // Dense sweep over one binade and its neighbours (the mantissa split is where bugs would be).
  for (int i = 0; i < 100000; ++i) {
    const double x = 0.25 + 2.0 * i / 100000.0;
    const double want = std::log(x);
    ASSERT_NEAR(portable_log(x), want, 4e-16 * std::fabs(want) + 2.3e-16) << x;
  }
}

// Acklam's approximation promises relative error < 1.15e-9. The truth comes from one Newton step
// on libm's erfc from the approximation itself (quadratically convergent from 1e-9).
TEST(Random, QuantileAccuracy) {
  std::vector<double> ps;
  for (int i = 1; i < 2000; ++i) ps.push_back(i / 2000.0);
  for (double p = 1e-16; p < 0.03; p *= 1.37) ps.push_back(p);
  ps.push_back(0x1p-53);
  ps.push_back(0.02425);
  for (double p : ps) {
    for (double pp : {p, 1.0 - p}) {
      const double x = normal_quantile(pp);
      const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
      const double truth = pp < 0.5 ? x - (phi_cdf(x) - pp) / pdf
                                    : x + (0.5 * std::erfc(x / std::sqrt(2.0)) - (1.0 - pp)) / pdf;
      ASSERT_NEAR(x, truth, 1.2e-9 * std::fabs(truth) + 1e-15) << pp;
    }
  }
  EXPECT_EQ(normal_quantile(0.5), 0.0);
  EXPECT_THROW(normal_quantile(0.0), tern::Error);
  EXPECT_THROW(normal_quantile(1.0), tern::Error);
}

// 1e6 draws: moments and a histogram against the normal CDF.
TEST(Random, NormalDistribution) {
  const size_t n = 1000000;
  std::vector<float> v(n);
  fill_normal(2024, stream_id("moments"), 0, v.data(), n, 0.0, 1.0);
  double s1 = 0, s2 = 0, s4 = 0;
  for (float x : v) {
    s1 += x;
    s2 += double(x) * x;
    s4 += double(x) * x * x * x;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  // Standard errors: mean 1/sqrt(n) = 1e-3, variance sqrt(2/n) = 1.4e-3, fourth moment
  // sqrt(96/n) = 9.8e-3; each allowed 5 standard errors.
  EXPECT_NEAR(mean, 0.0, 5e-3);
  EXPECT_NEAR(var, 1.0, 7.1e-3);
  EXPECT_NEAR(s4 / n, 3.0, 4.9e-2);
  // 0.25-wide bins over [-4, 4) plus the two tails; each bin's count is binomial, allowed
  // 5 standard deviations (+1 for the near-empty tail bins).
  std::vector<double> edges = {-INFINITY};
  for (int k = -16; k <= 16; ++k) edges.push_back(k * 0.25);
  edges.push_back(INFINITY);
  std::vector<int64_t> counts(edges.size() - 1, 0);
  for (float x : v) {
    size_t b = 0;
    while (!(x < edges[b + 1])) ++b;
    ++counts[b];
  }
  for (size_t b = 0; b < counts.size(); ++b) {
    const double prob = phi_cdf(edges[b + 1]) - phi_cdf(edges[b]);
    const double expect = prob * n, sd = std::sqrt(n * prob * (1 - prob));
    EXPECT_NEAR(double(counts[b]), expect, 5 * sd + 1)
        << "bin " << edges[b] << ".." << edges[b + 1];
  }
}
