// The group-quantised integer decode kernel (int_group_decode.h) on AVX-512 VNNI, four blocks of
// 32 columns of the 4 rows per step:
// - i8: 64 weights per register, made unsigned by xor 0x80 as vpdpbusd wants; each block's sum
//   starts at ActQ8::init8 (-128 * sum(q) over its 8 lanes), so it ends exact (as Q8_0).
// - i4: 64 bytes hold 128 weights stored + 8; the low nibbles (even columns) meet ActQ8::qeo's
//   even half and the high nibbles its odd half, 4 lanes per block, starting at ActQ8::init4
//   (-8 * sum(q) over 4 lanes: the offset of 8).
// Per block, the int32 sums are converted and scaled by s_w(group) * d_x(block). Blocks past the
// last whole group of 4 are summed by scalar code. Compiled with its own -m flags;
// int_group_decode.cpp calls it only when CPUID reports VNNI.
#include <immintrin.h>

#include "kernels/cpu/avx512_hsum.h"
#include "kernels/cpu/tile_prefetch.h"
#include "kernels/int_group_decode.h"

namespace tern::kernels {
namespace {

// s_w(row, block b + i) * d_x(b + i) in lane i, i < 4 (b a multiple of 4). `shift`:
// log2(blocks per group) when that is a power of two, else -1 (divide).
inline __m128 block_scales(const float* sw, int64_t b, int64_t bpg, int shift, __m128 xd) {
  if (!sw) return xd;
  if (bpg == 1) return _mm_mul_ps(_mm_loadu_ps(sw + b), xd);
  if (shift >= 2) return _mm_mul_ps(_mm_set1_ps(sw[b >> shift]), xd);  // one group for all 4
  if (shift == 1) {
    const float s0 = sw[b >> 1], s1 = sw[(b >> 1) + 1];
    return _mm_mul_ps(_mm_setr_ps(s0, s0, s1, s1), xd);
  }
  return _mm_mul_ps(
      _mm_setr_ps(sw[b / bpg], sw[(b + 1) / bpg], sw[(b + 2) / bpg], sw[(b + 3) / bpg]), xd);
}

// One block past the last whole group of 4, in intrinsics: GCC 12 at -O3 turns a plain int8 x
// int8 dot-product loop into vpdpbusd here, which reads one operand as unsigned (wrong sums).
float tail_block(const IntGroupRows& w, int r, const ActQ8& x, int64_t b) {
  __m256i q;  // the block's 32 signed weights in column order
  if (w.dtype == DType::i8) {
    q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.rows[r] + b * 32));
  } else {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.rows[r] + b * 16));
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(bytes, low4),
                  hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
    q = _mm256_sub_epi8(_mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi)),
                        _mm256_set1_epi8(8));
  }
  const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + b * 32));
  // |w| * sign(x, w) = w * x, with the unsigned operand vpdpbusd wants.
  const __m256i d =
      _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(xq, q));
  const int32_t dot = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(d));
  const float s = w.scales[r] ? w.scales[r][b * 32 / w.group] : 1.0f;
  return s * x.d[size_t(b)] * float(dot);
}

}  // namespace

void int_group_dot4_vnni(const IntGroupRows& w, const ActQ8& x, float* out) {
  const int64_t ahead = tile_prefetch_distance(w.rows);
  const int64_t nb = w.cols / 32, bpg = w.group / 32;
  const int shift = (bpg & (bpg - 1)) == 0 ? __builtin_ctzll(uint64_t(bpg)) : -1;
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  // Lane patterns that spread the 4 block scales over each block's lanes.
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i quarters = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i two = _mm512_set1_epi32(2);
  int64_t b = 0;
  if (w.dtype == DType::i8) {
    const __m512i flip = _mm512_set1_epi8(char(0x80));
    for (; b + 4 <= nb; b += 4) {
      const __m128 xd = _mm_loadu_ps(x.d.data() + b);
      const __m512i x01 = _mm512_loadu_si512(x.q.data() + b * 32);
      const __m512i x23 = _mm512_loadu_si512(x.q.data() + b * 32 + 64);
      const __m512i i01 = _mm512_loadu_si512(x.init8.data() + b * 8);
      const __m512i i23 = _mm512_loadu_si512(x.init8.data() + b * 8 + 16);
      for (int r = 0; r < 4; ++r) {
        const uint8_t* p = w.rows[r] + b * 32;
        _mm_prefetch(reinterpret_cast<const char*>(p + ahead), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(p + ahead + 64), _MM_HINT_T0);
        const __m512 sc = _mm512_castps128_ps512(block_scales(w.scales[r], b, bpg, shift, xd));
        const __m512i d01 =
            _mm512_dpbusd_epi32(i01, _mm512_xor_si512(_mm512_loadu_si512(p), flip), x01);
        const __m512i d23 =
            _mm512_dpbusd_epi32(i23, _mm512_xor_si512(_mm512_loadu_si512(p + 64), flip), x23);
        acc[r] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(d01), _mm512_permutexvar_ps(halves, sc), acc[r]);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d23),
                                 _mm512_permutexvar_ps(_mm512_add_epi32(halves, two), sc), acc[r]);
      }
    }
  } else {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (; b + 4 <= nb; b += 4) {
      const __m128 xd = _mm_loadu_ps(x.d.data() + b);
      const __m512i xe = _mm512_loadu_si512(x.qeo.data() + b * 32);
      const __m512i xo = _mm512_loadu_si512(x.qeo.data() + b * 32 + 64);
      const __m512i init = _mm512_loadu_si512(x.init4.data() + b * 4);
      for (int r = 0; r < 4; ++r) {
        const uint8_t* p = w.rows[r] + b * 16;
        _mm_prefetch(reinterpret_cast<const char*>(p + ahead), _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(p);
        const __m512i lo = _mm512_and_si512(v, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        const __m512i d = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo, xe), hi, xo);
        const __m512 sc = _mm512_castps128_ps512(block_scales(w.scales[r], b, bpg, shift, xd));
        acc[r] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(quarters, sc), acc[r]);
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    float tail = 0;
    for (int64_t t = b; t < nb; ++t) tail += tail_block(w, r, x, t);
    out[r] = hsum(acc[r]) + tail;
  }
}

}  // namespace tern::kernels
