// kernels/reduce.h: the lane-order reductions against a long-double serial sum (accuracy) and
// against the documented order written out element by element (the bits are fixed by n alone).
#include "kernels/reduce.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace tern::kernels {
namespace {

std::vector<float> random_row(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// Element i into partial i % 8, partials combined as reduce.h documents.
double documented_order(const std::vector<double>& terms) {
  double p[8] = {};
  for (size_t i = 0; i < terms.size(); ++i) p[i % 8] += terms[i];
  return ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
}

TEST(Reduce, SumsMatchALongDoubleReferenceAtAwkwardLengths) {
  for (int64_t n : {0, 1, 7, 8, 9, 15, 17, 255, 256, 4097}) {
    const std::vector<float> a = random_row(n, unsigned(n) + 1), b = random_row(n, unsigned(n) + 2);
    long double s = 0, ss = 0, ab = 0;
    for (int64_t i = 0; i < n; ++i)
      s += a[size_t(i)], ss += (long double)a[size_t(i)] * a[size_t(i)],
          ab += (long double)a[size_t(i)] * b[size_t(i)];
    const double tol = 1e-12 * (1.0 + double(ss));
    EXPECT_NEAR(sum_f64(a.data(), n), double(s), tol) << n;
    EXPECT_NEAR(sum_squares_f64(a.data(), n), double(ss), tol) << n;
    EXPECT_NEAR(dot_f64(a.data(), b.data(), n), double(ab), tol) << n;
  }
}

TEST(Reduce, OrderIsTheDocumentedLaneOrderBitForBit) {
  for (int64_t n : {1, 5, 8, 13, 64, 1001}) {
    const std::vector<float> a = random_row(n, 7u * unsigned(n));
    std::vector<double> terms(a.begin(), a.end()), squares;
    for (float x : a) squares.push_back(double(x) * double(x));
    EXPECT_EQ(sum_f64(a.data(), n), documented_order(terms)) << n;
    EXPECT_EQ(sum_squares_f64(a.data(), n), documented_order(squares)) << n;
  }
}

TEST(Reduce, MaxScalesSkipsNanAndIsMinusInfinityWhenEmpty) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(max_scaled_f32(nullptr, 0), -inf);
  for (int64_t n : {1, 3, 8, 9, 31, 300}) {
    std::vector<float> a = random_row(n, unsigned(n) + 11);
    float want = -inf;
    for (float x : a) want = std::max(want, x * 0.5f);
    EXPECT_EQ(max_scaled_f32(a.data(), n, 0.5f), want) << n;
    a[size_t(n / 2)] = std::numeric_limits<float>::quiet_NaN();
    want = -inf;
    for (float x : a) want = std::max(want, x * 0.5f);  // std::max keeps the first on NaN
    EXPECT_EQ(max_scaled_f32(a.data(), n, 0.5f), want) << n;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> all_nan(5, nan);
  EXPECT_EQ(max_scaled_f32(all_nan.data(), 5), -inf);
}

}  // namespace
}  // namespace tern::kernels
