// Philox4x32-10 and the value transforms on top of it. Every floating-point step here is an IEEE
// basic operation (+, -, *, /, sqrt) on doubles, and this file is compiled with
// -ffp-contract=off (src/core/CMakeLists.txt), so no compiler may fuse a*b+c: that is what makes
// "same seed, same bits" hold across GCC, Clang and any libm.
#include "core/random.h"

#include <bit>
#include <cmath>

#include "core/error.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

namespace tern::rng {
namespace {

// Multipliers and Weyl key increments from Salmon et al., "Parallel Random Numbers: As Easy as
// 1, 2, 3" (SC'11), Philox4x32.
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

PhiloxCounter philox_round(const PhiloxCounter& c, const PhiloxKey& k) {
  const uint64_t p0 = uint64_t(kMul0) * c[0];
  const uint64_t p1 = uint64_t(kMul1) * c[2];
  return {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1],
          uint32_t(p0)};
}

PhiloxCounter block(uint64_t seed, uint64_t stream, uint64_t block_index) {
  return philox4x32_10({uint32_t(block_index), uint32_t(block_index >> 32), uint32_t(stream),
                        uint32_t(stream >> 32)},
                       {uint32_t(seed), uint32_t(seed >> 32)});
}

// 64 bits from two consecutive words, high word first.
uint64_t pair_bits(const PhiloxCounter& b, uint64_t pair_index) {
  const size_t lane = 2 * size_t(pair_index % 2);
  return (uint64_t(b[lane]) << 32) | b[lane + 1];
}

double to_unit(uint64_t bits) {
  return double(bits >> 11) * 0x1p-53;
}

// Odd multiples of 2^-53: never 0 or 1, and 1 - p is exact, so both tails are equally precise.
double to_open_unit(uint64_t bits) {
  return double(2 * (bits >> 12) + 1) * 0x1p-53;
}

// Acklam's rational approximation of the normal quantile (2003; relative error < 1.15e-9, far
// below the float rounding of the values we store). Chosen over Box-Muller, which needs sin/cos,
// and over rejection methods, so one index is always exactly one uniform.
constexpr double kA[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                         1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
constexpr double kB[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                         6.680131188771972e+01, -1.328068155288572e+01};
constexpr double kC[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                         -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
constexpr double kD[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                         3.754408661907416e+00};
constexpr double kTail = 0.02425;

// kOddReciprocal[k] = 1 / (2k + 1), rounded once at compile time (IEEE division, like run time).
constexpr auto kOddReciprocal = [] {
  std::array<double, 12> r{};
  for (int k = 0; k < 12; ++k) r[size_t(k)] = 1.0 / double(2 * k + 1);
  return r;
}();

// Lower tail, p < kTail.
double quantile_tail(double p) {
  const double q = std::sqrt(-2.0 * portable_log(p));
  const double num = ((((kC[0] * q + kC[1]) * q + kC[2]) * q + kC[3]) * q + kC[4]) * q + kC[5];
  const double den = (((kD[0] * q + kD[1]) * q + kD[2]) * q + kD[3]) * q + 1.0;
  return num / den;
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kWeyl0;
      key[1] += kWeyl1;
    }
    counter = philox_round(counter, key);
  }
  return counter;
}

uint32_t word(uint64_t seed, uint64_t stream, uint64_t index) {
  return block(seed, stream, index / 4)[index % 4];
}

float uniform_float(uint64_t seed, uint64_t stream, uint64_t index) {
  return float(word(seed, stream, index) >> 8) * 0x1p-24f;
}

double uniform_double(uint64_t seed, uint64_t stream, uint64_t index) {
  return to_unit(pair_bits(block(seed, stream, index / 2), index));
}

double uniform_open(uint64_t seed, uint64_t stream, uint64_t index) {
  return to_open_unit(pair_bits(block(seed, stream, index / 2), index));
}

double normal(uint64_t seed, uint64_t stream, uint64_t index) {
  return normal_quantile(uniform_open(seed, stream, index));
}

void fill_normal(uint64_t seed, uint64_t stream, uint64_t first, float* out, size_t n, double mean,
                 double std) {
  PhiloxCounter b{};
  for (size_t k = 0; k < n; ++k) {
    const uint64_t index = first + k;
    if (k == 0 || index % 2 == 0) b = block(seed, stream, index / 2);
    const double z = normal_quantile(to_open_unit(pair_bits(b, index)));
    out[k] = float(mean + std * z);
  }
}

double normal_quantile(double p) {
  if (!(p > 0.0 && p < 1.0))
    fail(ErrorKind::internal, "normal_quantile: p must lie in (0, 1), got " + std::to_string(p));
  if (p < kTail) return quantile_tail(p);
  if (p > 1.0 - kTail) return -quantile_tail(1.0 - p);
  const double q = p - 0.5;
  const double r = q * q;
  const double num = ((((kA[0] * r + kA[1]) * r + kA[2]) * r + kA[3]) * r + kA[4]) * r + kA[5];
  const double den = ((((kB[0] * r + kB[1]) * r + kB[2]) * r + kB[3]) * r + kB[4]) * r + 1.0;
  return num * q / den;
}

double portable_log(double x) {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)), split from the bits (exact, no frexp needed).
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  int e = int((bits >> 52) & 0x7FF) - 1023;
  double m = std::bit_cast<double>((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716: the odd series to s^23 leaves a
  // truncation error below 1e-18, under double rounding.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double series = 0.0;
  for (int k = 11; k >= 1; --k) series = (series + kOddReciprocal[k]) * s2;
  const double log_m = 2.0 * s + 2.0 * s * series;
  constexpr double kLn2 = 0.6931471805599453094;
  return double(e) * kLn2 + log_m;
}

uint64_t stream_id(std::string_view name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a 64 offset basis
  for (unsigned char ch : name) {
    h ^= ch;
    h *= 0x100000001B3ull;  // FNV 64 prime
  }
  return h;
}

uint64_t Stream::take_pair() {
  const uint64_t pair = (word_ + 1) / 2;
  word_ = 2 * pair + 2;
  return pair;
}

double Stream::next_double() {
  return uniform_double(seed_, stream_, take_pair());
}

double Stream::next_normal() {
  return normal(seed_, stream_, take_pair());
}

}  // namespace tern::rng
