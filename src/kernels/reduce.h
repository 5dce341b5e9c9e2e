// Reductions over f32 rows with a double accumulator, in a fixed order: element i goes to
// partial sum i % 8 and the eight partials are combined pairwise at the end. A plain
// `s += double(x[i])` loop is one dependent chain, bound by the add latency (about 4 cycles per
// element); eight independent chains vectorise and run at the adds' throughput. The order
// depends only on n, not on the ISA or the thread count, so results stay bit-reproducible.
// Training's norms, softmaxes and losses sum this way (a few hundred to a few thousand values
// per row, millions of rows per step).
#pragma once

#include <cstdint>
#include <limits>

namespace tern::kernels {

inline constexpr int kReduceLanes = 8;

// Σ term(i) for i in [0, n), term returning double.
template <class Term>
inline double lane_sum(int64_t n, Term term) {
  double acc[kReduceLanes] = {};
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int j = 0; j < kReduceLanes; ++j) acc[j] += term(i + j);
  for (int j = 0; i < n; ++i, ++j) acc[j] += term(i);
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

inline double sum_f64(const float* x, int64_t n) {
  return lane_sum(n, [x](int64_t i) { return double(x[i]); });
}

inline double sum_squares_f64(const float* x, int64_t n) {
  return lane_sum(n, [x](int64_t i) { return double(x[i]) * double(x[i]); });
}

inline double dot_f64(const float* a, const float* b, int64_t n) {
  return lane_sum(n, [a, b](int64_t i) { return double(a[i]) * double(b[i]); });
}

// max_i x[i]·scale (-inf when n is 0). NaNs are skipped as std::max skips a NaN second
// argument; an all-NaN row gives -inf.
inline float max_scaled_f32(const float* x, int64_t n, float scale = 1.0f) {
  float acc[kReduceLanes];
  for (float& a : acc) a = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int j = 0; j < kReduceLanes; ++j) {
      const float v = x[i + j] * scale;
      acc[j] = acc[j] < v ? v : acc[j];
    }
  for (int j = 0; i < n; ++i, ++j) {
    const float v = x[i] * scale;
    acc[j] = acc[j] < v ? v : acc[j];
  }
  float m = acc[0];
  for (int j = 1; j < kReduceLanes; ++j) m = m < acc[j] ? acc[j] : m;
  return m;
}

}  // namespace tern::kernels
