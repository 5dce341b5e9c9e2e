#include "kernels/ggml/quantize_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"

namespace tern::kernels::ggml {
namespace {

void put_f16(uint8_t* out, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(out, &h, 2);
}
float f16_round(float v) {
  return f16_to_f32(f32_to_f16(v));
}
int clampi(int v, int lo, int hi) {
  return std::min(hi, std::max(lo, v));
}

// x ~= s * q - m with q in [0, qmax], s >= 0, m >= 0 (the min is subtracted, as Q4_K stores
// it); returns s and m, the codes in q.
void fit_scale_min(const float* x, const float* w, int n, int qmax, float* s_out, float* m_out,
                   uint8_t* q) {
  float lo = 0, hi = x[0];
  for (int i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  if (hi <= lo) {  // all values equal and <= 0: m alone represents them
    *s_out = 0;
    *m_out = -lo;
    std::fill_n(q, n, uint8_t(0));
    return;
  }
  float best_err = INFINITY, best_s = 0, best_b = lo;
  uint8_t trial[32];
  for (int k = -4; k <= 8; ++k) {
    float s = (hi - lo) / (float(qmax) + 0.1f * float(k)), b = lo;  // x ~= s * q + b, b <= 0
    for (int pass = 0; pass < 2; ++pass) {
      double A = 0, B = 0, C = 0, X = 0, Y = 0;
      for (int i = 0; i < n; ++i) {
        trial[i] = uint8_t(clampi(int(std::nearbyint((x[i] - b) / s)), 0, qmax));
        const double wi = w[i], qi = trial[i];
        A += wi, B += wi * qi, C += wi * qi * qi, X += wi * x[i], Y += wi * x[i] * qi;
      }
      const double det = A * C - B * B;
      double ns = det > 0 ? (A * Y - B * X) / det : 0, nb = det > 0 ? (C * X - B * Y) / det : 0;
      if (nb > 0 || ns <= 0) {  // a positive offset cannot be stored: fit the scale alone
        nb = 0;
        ns = C > 0 ? Y / C : 0;
      }
      if (ns <= 0) break;
      s = float(ns), b = float(nb);
      double err = 0;
      for (int i = 0; i < n; ++i) {
        const double qi = clampi(int(std::nearbyint((x[i] - b) / s)), 0, qmax);
        const double e = s * qi + b - x[i];
        err += w[i] * e * e;
      }
      if (err < best_err) best_err = float(err), best_s = s, best_b = b;
    }
  }
  *s_out = best_s;
  *m_out = -best_b;
  for (int i = 0; i < n; ++i)
    q[i] = best_s > 0 ? uint8_t(clampi(int(std::nearbyint((x[i] - best_b) / best_s)), 0, qmax)) : 0;
}

// x ~= s * q with q in [-32, 31]; the value of largest magnitude goes to -32, so s may be
// negative (Q6_K's sub-scales are signed).
float fit_scale_signed(const float* x, const float* w, int n) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), vmax = x[i];
  if (amax == 0) return 0;
  float best_err = INFINITY, best_s = 0;
  for (int k = -9; k <= 9; ++k) {
    const float s0 = vmax / -(32.0f + 0.1f * float(k));
    double num = 0, den = 0;
    for (int i = 0; i < n; ++i) {
      const double qi = clampi(int(std::nearbyint(x[i] / s0)), -32, 31);
      num += w[i] * x[i] * qi, den += w[i] * qi * qi;
    }
    if (den <= 0) continue;
    const float s = float(num / den);
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double qi = clampi(int(std::nearbyint(x[i] / s)), -32, 31);
      const double e = s * qi - x[i];
      err += w[i] * e * e;
    }
    if (err < best_err) best_err = float(err), best_s = s;
  }
  return best_s;
}

// Q4_K (kFive false) / Q5_K: d, dmin, 12 scale bytes, [qh[32],] qs[128].
template <bool kFive>
void q45_k_block(const float* x, uint8_t* out) {
  constexpr int qmax = kFive ? 31 : 15;
  float s[8], m[8], w[32];
  uint8_t q[256];
  for (int j = 0; j < 8; ++j) {
    const float* xj = x + 32 * j;
    double ss = 0;
    for (int i = 0; i < 32; ++i) ss += double(xj[i]) * xj[i];
    const float rms = float(std::sqrt(ss / 32));
    for (int i = 0; i < 32; ++i) w[i] = rms + std::fabs(xj[i]);
    fit_scale_min(xj, w, 32, qmax, &s[j], &m[j], q + 32 * j);
  }
  const float smax = *std::max_element(s, s + 8), mmax = *std::max_element(m, m + 8);
  const float d = f16_round(smax / 63), dmin = f16_round(mmax / 63);
  int sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = d > 0 ? clampi(int(std::nearbyint(s[j] / d)), 0, 63) : 0;
    mn[j] = dmin > 0 ? clampi(int(std::nearbyint(m[j] / dmin)), 0, 63) : 0;
  }
  put_f16(out, d);
  put_f16(out + 2, dmin);
  uint8_t* scales = out + 4;
  for (int j = 0; j < 4; ++j) {  // ggml::k_scale_min's layout
    scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
    scales[j + 8] = uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
  for (int v = 0; v < 256; ++v) {  // codes again, against the scales as stored
    const int j = v / 32;
    const float step = d * float(sc[j]), off = dmin * float(mn[j]);
    q[v] = step > 0 ? uint8_t(clampi(int(std::nearbyint((x[v] + off) / step)), 0, qmax)) : 0;
  }
  uint8_t* qh = out + 16;
  uint8_t* qs = out + (kFive ? 48 : 16);
  if (kFive) std::memset(qh, 0, 32);
  std::memset(qs, 0, 128);
  for (int v = 0; v < 256; ++v) {
    const int c = v / 64, k = (v / 32) % 2, l = v % 32;
    qs[32 * c + l] |= uint8_t((q[v] & 15) << (4 * k));
    if (kFive) qh[l] |= uint8_t(((q[v] >> 4) & 1) << (v / 32));
  }
}

// Q6_K: ql[128], qh[64], scales[16] (int8), d.
void q6_k_block(const float* x, uint8_t* out) {
  float s[16], w[16];
  for (int j = 0; j < 16; ++j) {
    for (int i = 0; i < 16; ++i) w[i] = x[16 * j + i] * x[16 * j + i];
    s[j] = fit_scale_signed(x + 16 * j, w, 16);
  }
  float smax = 0, vmax = 0;  // the sub-scale of largest magnitude, sign kept, goes to -128
  for (float v : s)
    if (std::fabs(v) > smax) smax = std::fabs(v), vmax = v;
  const float d = f16_round(vmax / -128.0f);
  int8_t sc[16];
  for (int j = 0; j < 16; ++j)
    sc[j] = d != 0 ? int8_t(clampi(int(std::nearbyint(s[j] / d)), -128, 127)) : 0;
  uint8_t* ql = out;
  uint8_t* qh = out + 128;
  std::memset(out, 0, 192);
  for (int j = 0; j < 16; ++j) out[192 + j] = uint8_t(sc[j]);
  put_f16(out + 208, d);
  for (int v = 0; v < 256; ++v) {
    const float step = d * float(sc[v / 16]);
    const int q = (step != 0 ? clampi(int(std::nearbyint(x[v] / step)), -32, 31) : 0) + 32;
    const int h = v / 128, r = v % 128;
    ql[64 * h + r % 64] |= uint8_t((q & 15) << (4 * (r / 64)));
    qh[32 * h + r % 32] |= uint8_t((q >> 4) << (2 * (r / 32)));
  }
}

template <void (*kBlock)(const float*, uint8_t*), int kBytes>
void rows(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / 256; ++b) kBlock(x + 256 * b, out + kBytes * b);
}

}  // namespace

void quantize_row_q4_k(const float* x, int64_t n, uint8_t* out) {
  rows<q45_k_block<false>, 144>(x, n, out);
}
void quantize_row_q5_k(const float* x, int64_t n, uint8_t* out) {
  rows<q45_k_block<true>, 176>(x, n, out);
}
void quantize_row_q6_k(const float* x, int64_t n, uint8_t* out) {
  rows<q6_k_block, 210>(x, n, out);
}

}  // namespace tern::kernels::ggml
