// AVX-512 (F/BW/VL/DQ) primitives. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq
// -mfma; only called after CPUID says the machine has them (isa_select.cpp).
#include <immintrin.h>

#include <limits>

#include <algorithm>

#include "kernels/cpu/avx512_hsum.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/norm_rows.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/packed_tiles.h"
#include "kernels/ref/ref_ops.h"

namespace tern::kernels {
namespace {

// e4m3 -> f32 exactly, via f16: the 7 magnitude bits shifted left by 7 form an f16 whose value is
// the e4m3 value times 2^-8 (normal and subnormal alike; the caller folds 2^8 into the scale).
// Going through vcvtph2ps avoids f32 denormal operands, which cost a microcode assist each.
// S.1111.111 is NaN.
inline __m512 fp8_e4m3_16_div256(const uint8_t* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i v = _mm256_cvtepu8_epi16(b);
  const __m256i h =
      _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7F)), 7),
                      _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x80)), 8));
  const __m512 f = _mm512_cvtph_ps(h);
  const __mmask16 nan =
      _mm_cmpeq_epi8_mask(_mm_and_si128(b, _mm_set1_epi8(0x7F)), _mm_set1_epi8(0x7F));
  return _mm512_mask_mov_ps(f, nan, _mm512_set1_ps(__builtin_nanf("")));
}

inline __m512 bf16_16(const uint16_t* p) {
  const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
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
    const __m512 s = _mm512_set1_ps((scale_row ? scale_row[c / w.block_cols] : 1.0f) * 256.0f);
    for (; i + 16 <= seg_end; i += 16)
      _mm512_storeu_ps(out + i, _mm512_mul_ps(fp8_e4m3_16_div256(src + i), s));
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
    const __m512 s = _mm512_set1_ps(scale_row ? scale_row[c / w.block_cols] : 1.0f);
    if (!i4) {
      for (; i + 16 <= seg_end; i += 16) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + col0 + i));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), s));
      }
    } else if ((col0 + i) % 2 == 0) {
      for (; i + 16 <= seg_end; i += 16) {
        // 8 bytes -> 16 nibbles in column order (low nibble first), then - 8.
        const __m128i b = _mm_cvtepu8_epi16(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + (col0 + i) / 2)));
        const __m128i nib =
            _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(0x0F)),
                         _mm_and_si128(_mm_slli_epi16(b, 4), _mm_set1_epi16(0x0F00)));
        const __m512i q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(nib), _mm512_set1_epi32(8));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(q), s));
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
      for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, bf16_16(src + i));
      for (; i < n; ++i) out[i] = bf16_to_f32(src[i]);
      return out;
    }
    case DType::f16: {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(w.row_ptr(row)) + col0;
      int64_t i = 0;
      for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(
            out + i,
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
      for (; i < n; ++i) out[i] = f16_to_f32(src[i]);
      return out;
    }
    case DType::f8_e4m3:
      dequant_fp8(w, row, col0, n, out);
      return out;
    case DType::i8:
    case DType::i4:
      dequant_int_groups(w, row, col0, n, out);
      return out;
    case DType::q8_0: {
      const uint8_t* blocks = w.row_ptr(row) + (col0 / 32) * 34;
      int64_t i = 0;
      for (; i + 32 <= n; i += 32, blocks += 34) {
        const __m512 d = _mm512_set1_ps(f16_scale(blocks));
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks + 2));
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(lo, d));
        _mm512_storeu_ps(out + i + 16, _mm512_mul_ps(hi, d));
      }
      if (i < n) ref::dequant_row(w, row, col0 + i, n - i, out + i);
      return out;
    }
    case DType::q4_0: {
      const uint8_t* blocks = w.row_ptr(row) + (col0 / 32) * 18;
      int64_t i = 0;
      for (; i + 32 <= n; i += 32, blocks += 18) {
        const __m512 d = _mm512_set1_ps(f16_scale(blocks));
        const __m512i bytes =
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 2)));
        const __m512i eight = _mm512_set1_epi32(8);
        const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(bytes, _mm512_set1_epi32(15)), eight);
        const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(bytes, 4), eight);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(out + i + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
      }
      if (i < n) ref::dequant_row(w, row, col0 + i, n - i, out + i);
      return out;
    }
    default:
      if (dtype_is_ggml_block(w.dtype))
        ggml::dequant_ggml_row_fast(w.dtype, w.row_ptr(row), col0, n, out);
      else
        ref::dequant_row(w, row, col0, n, out);
      return out;
  }
}

void dot4(const float* const* w, const float* x, int64_t n, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w[0] + i), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w[1] + i), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w[2] + i), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w[3] + i), xv, a3);
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w[0] + i), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w[1] + i), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w[2] + i), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w[3] + i), xv, a3);
  }
  out[0] = hsum(a0);
  out[1] = hsum(a1);
  out[2] = hsum(a2);
  out[3] = hsum(a3);
}

void dot4x4(const float* const* w, const float* const* x, int64_t n, float* out) {
  __m512 acc[4][4];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x0 = _mm512_loadu_ps(x[0] + i), x1 = _mm512_loadu_ps(x[1] + i);
    const __m512 x2 = _mm512_loadu_ps(x[2] + i), x3 = _mm512_loadu_ps(x[3] + i);
    for (int r = 0; r < 4; ++r) {
      const __m512 wv = _mm512_loadu_ps(w[r] + i);
      acc[0][r] = _mm512_fmadd_ps(wv, x0, acc[0][r]);
      acc[1][r] = _mm512_fmadd_ps(wv, x1, acc[1][r]);
      acc[2][r] = _mm512_fmadd_ps(wv, x2, acc[2][r]);
      acc[3][r] = _mm512_fmadd_ps(wv, x3, acc[3][r]);
    }
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    for (int j = 0; j < 4; ++j) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x[j] + i);
      for (int r = 0; r < 4; ++r)
        acc[j][r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w[r] + i), xv, acc[j][r]);
    }
  }
  for (int j = 0; j < 4; ++j)
    for (int r = 0; r < 4; ++r) out[4 * j + r] = hsum(acc[j][r]);
}

// Loads 16 weights of row `row` at column c (c + 16 <= cols) as f32, without the block scale.
template <DType kType>
inline __m512 load16(const uint8_t* row, int64_t c) {
  if constexpr (kType == DType::bf16)
    return bf16_16(reinterpret_cast<const uint16_t*>(row) + c);
  else
    return fp8_e4m3_16_div256(row + c);
}

// 4 rows x 1 token over [col0, col0 + n), dequantising in registers. FP8 accumulates each
// 128-column block separately and applies its scale once per block.
template <DType kType>
bool dot4_fused_impl(const WeightView& w, int64_t r0, int64_t col0, int64_t n, const float* x,
                     float* out) {
  if (n % 16) return false;
  const uint8_t* rows[4];
  for (int r = 0; r < 4; ++r) rows[r] = w.row_ptr(r0 + r);
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  if constexpr (kType == DType::bf16) {
    for (int64_t i = 0; i < n; i += 16) {
      const __m512 xv = _mm512_loadu_ps(x + i);
      for (int r = 0; r < 4; ++r)
        acc[r] = _mm512_fmadd_ps(load16<kType>(rows[r], col0 + i), xv, acc[r]);
    }
  } else {
    // Segments between block edges must be whole steps of 16 (the per-op harness found a chunk
    // starting inside a block reading past it).
    if (w.block_cols % 16 || col0 % 16) return false;
    for (int64_t i = 0; i < n;) {
      const int64_t c = col0 + i, seg = std::min(n - i, w.block_cols - c % w.block_cols);
      __m512 part[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                        _mm512_setzero_ps()};
      for (int64_t j = 0; j < seg; j += 16) {
        const __m512 xv = _mm512_loadu_ps(x + i + j);
        for (int r = 0; r < 4; ++r)
          part[r] = _mm512_fmadd_ps(load16<kType>(rows[r], c + j), xv, part[r]);
      }
      for (int r = 0; r < 4; ++r) {
        const float* sr = w.scale_row(r0 + r);
        const __m512 s = _mm512_set1_ps((sr ? sr[c / w.block_cols] : 1.0f) * 256.0f);
        acc[r] = _mm512_fmadd_ps(part[r], s, acc[r]);
      }
      i += seg;
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
  return true;
}

// Q8_0 / Q4_0: per 32-element block, the 32 quantised values times x, then one multiply by the
// block's f16 scale per row.
template <DType kType>
bool dot4_fused_blocks(const WeightView& w, int64_t r0, int64_t col0, int64_t n, const float* x,
                       float* out) {
  if (col0 % 32 || n % 32) return false;
  constexpr int64_t kBlockBytes = kType == DType::q8_0 ? 34 : 18;
  constexpr int64_t kMaxPackedBlocks = 64;  // matmul's column chunk of 2048
  const uint8_t* blocks[4];
  alignas(64) uint8_t unpacked[4][kMaxPackedBlocks * kBlockBytes];
  if (w.packed) {  // prepacked: the 4 rows' blocks back in stored form (the exact path's decode)
    if (n / 32 > kMaxPackedBlocks) return false;
    for (int r = 0; r < 4; ++r) {
      unpack_row_blocks(kType, static_cast<const uint8_t*>(w.data), w.cols, r0 + r, col0 / 32,
                        n / 32, unpacked[r], w.panels);
      blocks[r] = unpacked[r];
    }
  } else {
    for (int r = 0; r < 4; ++r) blocks[r] = w.row_ptr(r0 + r) + (col0 / 32) * kBlockBytes;
  }
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  for (int64_t i = 0; i < n; i += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* b = blocks[r] + (i / 32) * kBlockBytes;
      __m512 lo, hi;
      if constexpr (kType == DType::q8_0) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
        lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
        hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
      } else {
        const __m512i bytes =
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
        const __m512i eight = _mm512_set1_epi32(8);
        lo = _mm512_cvtepi32_ps(
            _mm512_sub_epi32(_mm512_and_si512(bytes, _mm512_set1_epi32(15)), eight));
        hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(bytes, 4), eight));
      }
      const __m512 part = _mm512_fmadd_ps(hi, x1, _mm512_mul_ps(lo, x0));
      acc[r] = _mm512_fmadd_ps(part, _mm512_set1_ps(f16_scale(b)), acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
  return true;
}

bool dot4_fused(const WeightView& w, int64_t r0, int64_t col0, int64_t n, const float* x,
                float* out) {
  switch (w.dtype) {
    case DType::q8_0:
      return dot4_fused_blocks<DType::q8_0>(w, r0, col0, n, x, out);
    case DType::q4_0:
      return dot4_fused_blocks<DType::q4_0>(w, r0, col0, n, x, out);
    case DType::bf16:
      return dot4_fused_impl<DType::bf16>(w, r0, col0, n, x, out);
    case DType::f8_e4m3:
      return dot4_fused_impl<DType::f8_e4m3>(w, r0, col0, n, x, out);
    default:
      return false;
  }
}

float dot(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i + 16 <= n; i += 16)
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  return hsum(_mm512_add_ps(acc0, acc1));
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(
        y + i, m,
        _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void axpy4(const float* a, const float* x, float* const* y, int64_t n) {
  const __m512 a0 = _mm512_set1_ps(a[0]), a1 = _mm512_set1_ps(a[1]), a2 = _mm512_set1_ps(a[2]),
               a3 = _mm512_set1_ps(a[3]);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(y[0] + i, _mm512_fmadd_ps(a0, xv, _mm512_loadu_ps(y[0] + i)));
    _mm512_storeu_ps(y[1] + i, _mm512_fmadd_ps(a1, xv, _mm512_loadu_ps(y[1] + i)));
    _mm512_storeu_ps(y[2] + i, _mm512_fmadd_ps(a2, xv, _mm512_loadu_ps(y[2] + i)));
    _mm512_storeu_ps(y[3] + i, _mm512_fmadd_ps(a3, xv, _mm512_loadu_ps(y[3] + i)));
  }
  if (i < n) {  // the same masked FMA as axpy's tail, so the two agree to the bit
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 av[4] = {a0, a1, a2, a3};
    for (int r = 0; r < 4; ++r)
      _mm512_mask_storeu_ps(y[r] + i, m,
                            _mm512_fmadd_ps(av[r], xv, _mm512_maskz_loadu_ps(m, y[r] + i)));
  }
}

// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two so r stays
// exact), exp(r) = 1 + r + r^2 p(r) with Cephes' expf coefficients.
inline __m512 exp16(__m512 x) {
  // max(c, x) / min(c, x) return x when it is NaN, so NaN passes through.
  x = _mm512_min_ps(_mm512_set1_ps(88.7f), _mm512_max_ps(_mm512_set1_ps(-87.4f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

// exp_affine, and Σ out in double when kSum (8 double lanes, the masked tail included).
template <bool kSum>
double exp_affine_impl(const float* x, float a, float b, float* out, int64_t n) {
  const __m512 av = _mm512_set1_ps(a), bv = _mm512_set1_ps(b);
  const __m512 lo = _mm512_set1_ps(-87.3f), hi = _mm512_set1_ps(88.7f);
  auto one = [&](__m512 v) {
    const __m512 z = _mm512_fmadd_ps(av, v, bv);
    __m512 e = exp16(z);
    e = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(z, lo, _CMP_LT_OQ), e);  // underflow: 0
    return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(z, hi, _CMP_GT_OQ),
                              _mm512_set1_ps(std::numeric_limits<float>::infinity()));
  };
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  const auto add = [&](__m512 e) {
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(
        s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = one(_mm512_loadu_ps(x + i));
    _mm512_storeu_ps(out + i, e);
    if constexpr (kSum) add(e);
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m512 e = _mm512_maskz_mov_ps(m, one(_mm512_maskz_loadu_ps(m, x + i)));
    _mm512_mask_storeu_ps(out + i, m, e);
    if constexpr (kSum) add(e);
  }
  return kSum ? _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) : 0.0;
}

void exp_affine(const float* x, float a, float b, float* out, int64_t n) {
  exp_affine_impl<false>(x, a, b, out, n);
}

double exp_affine_sum(const float* x, float a, float b, float* out, int64_t n) {
  return exp_affine_impl<true>(x, a, b, out, n);
}

float max_scaled(const float* x, int64_t n, float scale) {
  const __m512 sv = _mm512_set1_ps(scale),
               none = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m0 = none, m1 = none;
  int64_t i = 0;
  // max(v, m) returns m when v is NaN: NaNs are skipped.
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), sv), m0);
    m1 = _mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i + 16), sv), m1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    m0 = _mm512_max_ps(_mm512_mask_mul_ps(none, m, _mm512_maskz_loadu_ps(m, x + i), sv), m0);
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

}  // namespace

const IsaKernels* isa_avx512() {
  static const IsaKernels k{"avx512",
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
                            rmsnorm_row_avx512,
                            rmsnorm_bwd_row_avx512};
  return &k;
}

}  // namespace tern::kernels
