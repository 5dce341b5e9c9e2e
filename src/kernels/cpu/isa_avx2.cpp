// AVX2 + FMA + F16C primitives. Compiled with -mavx2 -mfma -mf16c; only called after CPUID
// says the machine has them (isa_select.cpp).
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include <algorithm>

#include "kernels/cpu/isa.h"
#include "kernels/packed_tiles.h"
#include "kernels/ref/ref_ops.h"

namespace tern::kernels {
namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// e4m3 -> f32 exactly, via f16 (see isa_avx512.cpp): returns the value times 2^-8.
inline __m256 fp8_e4m3_8_div256(const uint8_t* p) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  const __m128i v = _mm_cvtepu8_epi16(b);
  const __m128i h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x7F)), 7),
                                 _mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x80)), 8));
  const __m256 f = _mm256_cvtph_ps(h);
  const __m256i mag = _mm256_cvtepu8_epi32(_mm_and_si128(b, _mm_set1_epi8(0x7F)));
  const __m256 nan_mask = _mm256_castsi256_ps(_mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7F)));
  return _mm256_blendv_ps(f, _mm256_set1_ps(__builtin_nanf("")), nan_mask);
}

inline float f16_scale(const uint8_t* block) {
  return _cvtsh_ss(uint16_t(block[0] | (block[1] << 8)));
}

void dequant_fp8(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* out) {
  const uint8_t* src = w.row_ptr(row) + col0;
  const float* scale_row = w.scale_row(row);
  int64_t i = 0;
  while (i < n) {
    const int64_t c = col0 + i;
    const int64_t seg_end = std::min(n, i + (w.block_cols - c % w.block_cols));
    const __m256 s = _mm256_set1_ps((scale_row ? scale_row[c / w.block_cols] : 1.0f) * 256.0f);
    for (; i + 8 <= seg_end; i += 8)
      _mm256_storeu_ps(out + i, _mm256_mul_ps(fp8_e4m3_8_div256(src + i), s));
    if (i < seg_end) ref::dequant_row(w, row, col0 + i, seg_end - i, out + i), i = seg_end;
  }
}

// i8 / i4 rows with a scale per group of block_cols columns, one group segment at a time.
void dequant_int_groups(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* out) {
  const uint8_t* src = w.row_ptr(row);
  const float* scale_row = w.scale_row(row);
  const bool i4 = w.dtype == DType::i4;
  int64_t i = 0;
  while (i < n) {
    const int64_t c = col0 + i;
    const int64_t seg_end = std::min(n, i + (w.block_cols - c % w.block_cols));
    const __m256 s = _mm256_set1_ps(scale_row ? scale_row[c / w.block_cols] : 1.0f);
    if (!i4) {
      for (; i + 8 <= seg_end; i += 8) {
        const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + col0 + i));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), s));
      }
    } else if ((col0 + i) % 2 == 0) {
      for (; i + 8 <= seg_end; i += 8) {
        // 4 bytes -> 8 nibbles in column order (low nibble first), then - 8.
        int32_t four;
        std::memcpy(&four, src + (col0 + i) / 2, 4);
        const __m128i b = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(four));
        const __m128i nib =
            _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(0x0F)),
                         _mm_and_si128(_mm_slli_epi16(b, 4), _mm_set1_epi16(0x0F00)));
        const __m256i q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(nib), _mm256_set1_epi32(8));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));
      }
    }
    if (i < seg_end) ref::dequant_row(w, row, col0 + i, seg_end - i, out + i), i = seg_end;
  }
}

const float* dequant(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* out) {
  if (w.packed) return dequant_packed(w, row, col0, n, out, dequant);
  switch (w.dtype) {
    case DType::f32:
      return reinterpret_cast<const float*>(w.row_ptr(row)) + col0;
    case DType::bf16: {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(w.row_ptr(row)) + col0;
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        const __m256i v =
            _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
      }
      for (; i < n; ++i) out[i] = bf16_to_f32(src[i]);
      return out;
    }
    case DType::f16: {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(w.row_ptr(row)) + col0;
      int64_t i = 0;
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(
            out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
      for (; i < n; ++i) out[i] = f16_to_f32(src[i]);
      return out;
    }
    case DType::f8_e4m3:
      dequant_fp8(w, row, col0, n, out);
      return out;
    case DType::q8_0: {
      const uint8_t* blocks = w.row_ptr(row) + (col0 / 32) * 34;
      int64_t i = 0;
      for (; i + 32 <= n; i += 32, blocks += 34) {
        const __m256 d = _mm256_set1_ps(f16_scale(blocks));
        for (int j = 0; j < 4; ++j) {
          const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blocks + 2 + 8 * j));
          _mm256_storeu_ps(out + i + 8 * j,
                           _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
        }
      }
      if (i < n) ref::dequant_row(w, row, col0 + i, n - i, out + i);
      return out;
    }
    case DType::i8:
    case DType::i4:
      dequant_int_groups(w, row, col0, n, out);
      return out;
    case DType::q4_0: {
      const uint8_t* blocks = w.row_ptr(row) + (col0 / 32) * 18;
      int64_t i = 0;
      for (; i + 32 <= n; i += 32, blocks += 18) {
        const __m256 d = _mm256_set1_ps(f16_scale(blocks));
        for (int j = 0; j < 2; ++j) {
          const __m256i b = _mm256_cvtepu8_epi32(
              _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blocks + 2 + 8 * j)));
          const __m256i lo =
              _mm256_sub_epi32(_mm256_and_si256(b, _mm256_set1_epi32(15)), _mm256_set1_epi32(8));
          const __m256i hi = _mm256_sub_epi32(_mm256_srli_epi32(b, 4), _mm256_set1_epi32(8));
          _mm256_storeu_ps(out + i + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), d));
          _mm256_storeu_ps(out + i + 16 + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), d));
        }
      }
      if (i < n) ref::dequant_row(w, row, col0 + i, n - i, out + i);
      return out;
    }
    default:
      ref::dequant_row(w, row, col0, n, out);
      return out;
  }
}

void dot4(const float* const* w, const float* x, int64_t n, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w[0] + i), xv, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w[1] + i), xv, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w[2] + i), xv, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w[3] + i), xv, a3);
  }
  float r[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
  for (; i < n; ++i)
    for (int j = 0; j < 4; ++j) r[j] += w[j][i] * x[i];
  for (int j = 0; j < 4; ++j) out[j] = r[j];
}

void dot4x4(const float* const* w, const float* const* x, int64_t n, float* out) {
  // 16 accumulators + 4 x vectors would exceed 16 ymm registers; two 2-token halves fit.
  for (int half = 0; half < 2; ++half) {
    const float* xa = x[2 * half];
    const float* xb = x[2 * half + 1];
    __m256 a[4], b[4];
    for (int r = 0; r < 4; ++r) a[r] = b[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 va = _mm256_loadu_ps(xa + i), vb = _mm256_loadu_ps(xb + i);
      for (int r = 0; r < 4; ++r) {
        const __m256 wv = _mm256_loadu_ps(w[r] + i);
        a[r] = _mm256_fmadd_ps(wv, va, a[r]);
        b[r] = _mm256_fmadd_ps(wv, vb, b[r]);
      }
    }
    for (int r = 0; r < 4; ++r) {
      float sa = hsum(a[r]), sb = hsum(b[r]);
      for (int64_t k = i; k < n; ++k) sa += w[r][k] * xa[k], sb += w[r][k] * xb[k];
      out[4 * (2 * half) + r] = sa;
      out[4 * (2 * half + 1) + r] = sb;
    }
  }
}

bool dot4_fused(const WeightView&, int64_t, int64_t, int64_t, const float*, float*) {
  return false;
}

float dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8)
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);  // as the vector lanes: one rounding
}

void axpy4(const float* a, const float* x, float* const* y, int64_t n) {
  const __m256 a0 = _mm256_set1_ps(a[0]), a1 = _mm256_set1_ps(a[1]), a2 = _mm256_set1_ps(a[2]),
               a3 = _mm256_set1_ps(a[3]);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y[0] + i, _mm256_fmadd_ps(a0, xv, _mm256_loadu_ps(y[0] + i)));
    _mm256_storeu_ps(y[1] + i, _mm256_fmadd_ps(a1, xv, _mm256_loadu_ps(y[1] + i)));
    _mm256_storeu_ps(y[2] + i, _mm256_fmadd_ps(a2, xv, _mm256_loadu_ps(y[2] + i)));
    _mm256_storeu_ps(y[3] + i, _mm256_fmadd_ps(a3, xv, _mm256_loadu_ps(y[3] + i)));
  }
  for (; i < n; ++i)  // std::fma as axpy's tail: equal to the bit whatever the contraction
    for (int r = 0; r < 4; ++r) y[r][i] = std::fma(a[r], x[i], y[r][i]);
}

// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two so r stays
// exact), exp(r) = 1 + r + r^2 p(r) with Cephes' expf coefficients.
inline __m256 exp8(__m256 x) {
  // min(c, x) / max(c, x) return x when it is NaN, so NaN passes through.
  x = _mm256_min_ps(_mm256_set1_ps(88.7f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  // 2^n as 2^(n/2) * 2^(n - n/2): n reaches 128, one past the largest exponent field.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
}

// exp_affine, and Σ out in double when `sum` is set (the vector part in 4 double lanes, the
// scalar tail after).
template <bool kSum>
double exp_affine_impl(const float* x, float a, float b, float* out, int64_t n) {
  const __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
  const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.7f);
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 z = _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), bv);
    __m256 e = _mm256_andnot_ps(_mm256_cmp_ps(z, lo, _CMP_LT_OQ), exp8(z));  // underflow: 0
    e = _mm256_blendv_ps(e, inf, _mm256_cmp_ps(z, hi, _CMP_GT_OQ));
    _mm256_storeu_ps(out + i, e);
    if constexpr (kSum) {
      s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) sum += double(out[i] = std::exp(a * x[i] + b));
  return sum;
}

void exp_affine(const float* x, float a, float b, float* out, int64_t n) {
  exp_affine_impl<false>(x, a, b, out, n);
}

double exp_affine_sum(const float* x, float a, float b, float* out, int64_t n) {
  return exp_affine_impl<true>(x, a, b, out, n);
}

float max_scaled(const float* x, int64_t n, float scale) {
  const __m256 sv = _mm256_set1_ps(scale);
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  // max(v, m) returns m when v is NaN: NaNs are skipped.
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), m);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float best = lanes[0];
  for (int j = 1; j < 8; ++j) best = best < lanes[j] ? lanes[j] : best;
  for (; i < n; ++i) {
    const float v = x[i] * scale;
    best = best < v ? v : best;
  }
  return best;
}

}  // namespace

const IsaKernels* isa_avx2() {
  static const IsaKernels k{"avx2",
                            dequant,
                            dot4,
                            dot4x4,
                            dot4_fused,
                            dot,
                            axpy,
                            axpy4,
                            exp_affine,
                            max_scaled,
                            exp_affine_sum,
                            isa_scalar().rmsnorm_row,
                            isa_scalar().rmsnorm_bwd_row};
  return &k;
}

}  // namespace tern::kernels
