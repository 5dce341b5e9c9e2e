// The integer decode kernel (int8_decode.h) on AVX-512 VNNI, reading the weights as stored.
// Four blocks of the 4 rows per step:
// - Q8_0: each row's weights are made unsigned by xor 0x80 (w + 128), as vpdpbusd wants, and
//   each block's sum starts at ActQ8::init8 (-16 * sum(q) per lane), so it ends exact; two
//   blocks per 512-bit register, lanes 0-7 and 8-15.
// - Q4_0: four blocks' 16 nibble bytes fill one register; low nibbles meet the activations'
//   first halves and high nibbles the second halves (ActQ8::q4x), 4 lanes per block, starting at
//   ActQ8::init4 (-2 * sum(q) per lane: the offset of 8).
// The 16 f16 scales of 4 rows x 4 blocks come in with one gather, are multiplied by the 4
// activation scales and spread to each block's lanes by a permute. Blocks past the last whole
// group of 4 take one 256-bit step each. Compiled with its own -m flags; int8_decode.cpp calls
// it only when CPUID reports VNNI.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/avx512_hsum.h"
#include "kernels/cpu/tile_prefetch.h"
#include "kernels/int8_decode.h"

namespace tern::kernels {

bool int8_vnni_built() {
  return true;
}

namespace {

// The last 8 bytes of a 72-byte Q4_0 group, zero-extended, by a plain 8-byte load: a masked
// 64-byte load, whose masked-off bytes reach into the next page, cost the IQ1_S kernel a third of
// its speed from memory on AMD EPYC (here no difference was measurable; the pattern is avoided).
inline __m512i tail8(const uint8_t* p) {
  return _mm512_zextsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

inline float f16_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return _cvtsh_ss(h);
}

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// d_w(row r, block b + i) * d_x(b + i) in lane 4r + i: one gather of the 16 f16 scales (4 bytes
// read at each block's start: the scale and the first quant bytes), then the activation scales.
inline __m512 scales_4x4(const uint8_t* base, __m512i offsets, const float* xd) {
  const __m512i g = _mm512_i32gather_epi32(offsets, base, 1);
  const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
  return _mm512_mul_ps(dw, _mm512_broadcast_f32x4(_mm_loadu_ps(xd)));
}

// Lane index vectors that spread scale 4r + i over the lanes of block i of row r.
inline __m512i spread(int a, int b) {  // lanes 0-7: a, lanes 8-15: b
  return _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
}
inline __m512i spread4(int r) {  // lanes 4i..4i+3: 4r + i
  return _mm512_setr_epi32(4 * r, 4 * r, 4 * r, 4 * r, 4 * r + 1, 4 * r + 1, 4 * r + 1, 4 * r + 1,
                           4 * r + 2, 4 * r + 2, 4 * r + 2, 4 * r + 2, 4 * r + 3, 4 * r + 3,
                           4 * r + 3, 4 * r + 3);
}

// Q8_0 blocks [b, n_blocks) one 256-bit step each (what is left after the groups of 4).
void dot4_q8_0_tail(const uint8_t* const* rows, const ActQ8& x, int64_t b, int64_t n_blocks,
                    __m256* tail) {
  constexpr int64_t kBytes = 34;
  for (int r = 0; r < 4; ++r) tail[r] = _mm256_setzero_ps();
  for (; b < n_blocks; ++b) {
    const __m256i xb = load256(x.q.data() + b * 32);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + b * kBytes;
      const __m256i w = load256(blk + 2);
      const __m256i dot =
          _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(xb, w));
      tail[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(f16_scale(blk) * x.d[b]),
                                tail[r]);
    }
  }
}

void dot4_q8_0(const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks, float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  constexpr int64_t kBytes = 34;
  __m512 acc[4][2];
  for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
  const __m512i offsets = _mm512_setr_epi32(
      0, kBytes, 2 * kBytes, 3 * kBytes, int(rows[1] - rows[0]), int(rows[1] - rows[0] + kBytes),
      int(rows[1] - rows[0] + 2 * kBytes), int(rows[1] - rows[0] + 3 * kBytes),
      int(rows[2] - rows[0]), int(rows[2] - rows[0] + kBytes), int(rows[2] - rows[0] + 2 * kBytes),
      int(rows[2] - rows[0] + 3 * kBytes), int(rows[3] - rows[0]), int(rows[3] - rows[0] + kBytes),
      int(rows[3] - rows[0] + 2 * kBytes), int(rows[3] - rows[0] + 3 * kBytes));
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  int64_t b = 0;
  for (; b + 4 <= n_blocks; b += 4) {
    const __m512 sc = scales_4x4(rows[0] + b * kBytes, offsets, x.d.data() + b);
    const __m512i x01 = _mm512_loadu_si512(x.q.data() + b * 32);
    const __m512i x23 = _mm512_loadu_si512(x.q.data() + b * 32 + 64);
    const __m512i i01 = _mm512_loadu_si512(x.init8.data() + b * 8);
    const __m512i i23 = _mm512_loadu_si512(x.init8.data() + b * 8 + 16);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + b * kBytes + 2;
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead + 64), _MM_HINT_T0);
      const __m512i w01 = _mm512_xor_si512(
          _mm512_inserti64x4(_mm512_castsi256_si512(load256(blk)), load256(blk + kBytes), 1), flip);
      const __m512i w23 =
          _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(load256(blk + 2 * kBytes)),
                                              load256(blk + 3 * kBytes), 1),
                           flip);
      const __m512i d01 = _mm512_dpbusd_epi32(i01, w01, x01);
      const __m512i d23 = _mm512_dpbusd_epi32(i23, w23, x23);
      acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d01),
                                  _mm512_permutexvar_ps(spread(4 * r, 4 * r + 1), sc), acc[r][0]);
      acc[r][1] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(d23),
                          _mm512_permutexvar_ps(spread(4 * r + 2, 4 * r + 3), sc), acc[r][1]);
    }
  }
  __m256 tail[4];
  dot4_q8_0_tail(rows, x, b, n_blocks, tail);
  for (int r = 0; r < 4; ++r)
    out[r] =
        hsum(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_castps256_ps512(tail[r])));
}

// Q4_0 blocks [b, n_blocks) one 256-bit step each (what is left after the groups of 4).
void dot4_q4_0_tail(const uint8_t* const* rows, const ActQ8& x, int64_t b, int64_t n_blocks,
                    __m256* tail) {
  constexpr int64_t kBytes = 18;
  for (int r = 0; r < 4; ++r) tail[r] = _mm256_setzero_ps();
  const __m128i low4 = _mm_set1_epi8(15);
  for (; b < n_blocks; ++b) {
    const __m256i xb = load256(x.q.data() + b * 32);
    const __m256 offset = _mm256_set1_ps(float(x.sum[b]));  // 8 lanes: 8 * sum in all
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + b * kBytes;
      const __m128i bytes = load128(blk + 2);
      const __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4),
                                           _mm_and_si128(bytes, low4));
      const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nib, xb);
      tail[r] = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(dot), offset),
                                _mm256_set1_ps(f16_scale(blk) * x.d[b]), tail[r]);
    }
  }
}

void dot4_q4_0(const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks, float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  constexpr int64_t kBytes = 18;
  __m512 acc[4];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512i offsets = _mm512_setr_epi32(
      0, kBytes, 2 * kBytes, 3 * kBytes, int(rows[1] - rows[0]), int(rows[1] - rows[0] + kBytes),
      int(rows[1] - rows[0] + 2 * kBytes), int(rows[1] - rows[0] + 3 * kBytes),
      int(rows[2] - rows[0]), int(rows[2] - rows[0] + kBytes), int(rows[2] - rows[0] + 2 * kBytes),
      int(rows[2] - rows[0] + 3 * kBytes), int(rows[3] - rows[0]), int(rows[3] - rows[0] + kBytes),
      int(rows[3] - rows[0] + 2 * kBytes), int(rows[3] - rows[0] + 3 * kBytes));
  const __m512i low4 = _mm512_set1_epi8(15);
  int64_t b = 0;
  for (; b + 4 <= n_blocks; b += 4) {
    const __m512 sc = scales_4x4(rows[0] + b * kBytes, offsets, x.d.data() + b);
    const __m512i xlo = _mm512_loadu_si512(x.q4x.data() + b * 32);
    const __m512i xhi = _mm512_loadu_si512(x.q4x.data() + b * 32 + 64);
    const __m512i init = _mm512_loadu_si512(x.init4.data() + b * 4);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + b * kBytes + 2;
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      __m512i raw = _mm512_castsi128_si512(load128(blk));
      raw = _mm512_inserti32x4(raw, load128(blk + kBytes), 1);
      raw = _mm512_inserti32x4(raw, load128(blk + 2 * kBytes), 2);
      raw = _mm512_inserti32x4(raw, load128(blk + 3 * kBytes), 3);
      const __m512i lo = _mm512_and_si512(raw, low4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo, xlo), hi, xhi);
      acc[r] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(spread4(r), sc), acc[r]);
    }
  }
  __m256 tail[4];
  dot4_q4_0_tail(rows, x, b, n_blocks, tail);
  for (int r = 0; r < 4; ++r) out[r] = hsum(_mm512_add_ps(acc[r], _mm512_castps256_ps512(tail[r])));
}

// The byte permutes of the VBMI Q4_0 kernels, built once at compile time (building them on the
// stack per call cost as much as a short row's arithmetic): a group of 4 blocks is 72 bytes;
// `quant` picks each block's 16 nibble bytes, `scale` each block's f16 scale into the 4 16-bit
// lanes that feed its 4 float lanes.
struct Q4VbmiTables {
  alignas(64) uint8_t quant[64] = {};
  alignas(64) uint8_t scale[64] = {};
  constexpr Q4VbmiTables() {
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 16; ++k) quant[16 * i + k] = uint8_t(2 + 18 * i + k);
    for (int j = 0; j < 16; ++j) {
      scale[2 * j] = uint8_t(18 * (j / 4));
      scale[2 * j + 1] = uint8_t(18 * (j / 4) + 1);
    }
  }
};
constexpr Q4VbmiTables kQ4Tables;

// Each byte's high nibble as a byte 0..15, in one GF(2) affine step (a shift by 4 and a mask
// otherwise): result bit i is source bit i + 4 for i < 4, and 0 above.
__attribute__((target("gfni"))) inline __m512i high_nibbles(__m512i bytes) {
  return _mm512_gf2p8affine_epi64_epi8(bytes, _mm512_set1_epi64(0x1020408000000000), 0);
}

// The byte permutes of the VBMI Q8_0 kernel. A group of 4 blocks is 136 bytes, read as three
// 64-byte loads at 0, 64 and 72 (the last ends on the group's last byte): `quant01` picks blocks
// 0 and 1's 32 weights from the first two, `quant23` blocks 2 and 3's from the last two, and
// `scale` the 4 f16 scales (bytes 0, 34, 68 and 102) into 4 16-bit lanes each.
struct Q8VbmiTables {
  alignas(64) uint8_t quant01[64] = {};
  alignas(64) uint8_t quant23[64] = {};
  alignas(64) uint8_t scale[64] = {};
  constexpr Q8VbmiTables() {
    for (int k = 0; k < 32; ++k) {
      quant01[k] = uint8_t(2 + k);                   // block 0: bytes 2..33 of the first load
      quant01[32 + k] = uint8_t(36 + k);             // block 1: bytes 36..67 (64.. from the second)
      quant23[k] = uint8_t(70 - 64 + k);             // block 2: bytes 70..101 of the load at 64
      quant23[32 + k] = uint8_t(64 + 104 - 72 + k);  // block 3: bytes 104..135 of the load at 72
    }
    const int at[4] = {0, 34, 64 + 68 - 64, 64 + 102 - 64};
    for (int j = 0; j < 16; ++j) {
      scale[2 * j] = uint8_t(at[j / 4]);
      scale[2 * j + 1] = uint8_t(at[j / 4] + 1);
    }
  }
};
constexpr Q8VbmiTables kQ8Tables;

// Q8_0 with AVX-512 VBMI: no gather (slow on AMD cores) and no per-block inserts; each row's
// group of 4 blocks is three overlapping loads and three two-source byte permutes.
__attribute__((target("avx512vbmi,gfni"))) void dot4_q8_0_vbmi(const uint8_t* const* rows,
                                                               const ActQ8& x, int64_t n_blocks,
                                                               float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  constexpr int64_t kBytes = 34;
  const __m512i q01 = _mm512_load_si512(kQ8Tables.quant01);
  const __m512i q23 = _mm512_load_si512(kQ8Tables.quant23);
  const __m512i sidx = _mm512_load_si512(kQ8Tables.scale);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const __m512i spread_x = spread4(0);
  const __m512i lanes01 = spread(0, 4), lanes23 = spread(8, 12);
  __m512 acc[4][2];
  for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= n_blocks; b += 4) {
    const __m512i x01 = _mm512_loadu_si512(x.q.data() + b * 32);
    const __m512i x23 = _mm512_loadu_si512(x.q.data() + b * 32 + 64);
    const __m512i i01 = _mm512_loadu_si512(x.init8.data() + b * 8);
    const __m512i i23 = _mm512_loadu_si512(x.init8.data() + b * 8 + 16);
    const __m512 sx =
        _mm512_permutexvar_ps(spread_x, _mm512_castps128_ps512(_mm_loadu_ps(x.d.data() + b)));
    for (int r = 0; r < 4; ++r) {
      const uint8_t* grp = rows[r] + b * kBytes;
      _mm_prefetch(reinterpret_cast<const char*>(grp + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(grp + ahead + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(grp + ahead + 128), _MM_HINT_T0);
      const __m512i a = _mm512_loadu_si512(grp);
      const __m512i c = _mm512_loadu_si512(grp + 64);
      const __m512i e = _mm512_loadu_si512(grp + 72);
      const __m512i w01 = _mm512_xor_si512(_mm512_permutex2var_epi8(a, q01, c), flip);
      const __m512i w23 = _mm512_xor_si512(_mm512_permutex2var_epi8(c, q23, e), flip);
      // Lane 4i + k: block i's weight scale times its activation scale.
      const __m512 sc = _mm512_mul_ps(
          _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(a, sidx, c))), sx);
      acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(i01, w01, x01)),
                                  _mm512_permutexvar_ps(lanes01, sc), acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(i23, w23, x23)),
                                  _mm512_permutexvar_ps(lanes23, sc), acc[r][1]);
    }
  }
  __m256 tail[4];
  dot4_q8_0_tail(rows, x, b, n_blocks, tail);
  for (int r = 0; r < 4; ++r)
    out[r] =
        hsum(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_castps256_ps512(tail[r])));
}

// Q4_0 with AVX-512 VBMI: a group of 4 blocks is 72 contiguous bytes, read as one 64-byte load
// and a masked 8-byte load (which cannot fault past the row); one two-source byte permute lays
// the 64 nibble bytes out as 4 x 16 and another spreads the 4 f16 scales over their blocks'
// lanes, so neither a gather nor per-block inserts are needed.
__attribute__((target("avx512vbmi,gfni"))) void dot4_q4_0_vbmi(const uint8_t* const* rows,
                                                               const ActQ8& x, int64_t n_blocks,
                                                               float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  constexpr int64_t kBytes = 18;
  const __m512i qidx = _mm512_load_si512(kQ4Tables.quant),
                sidx = _mm512_load_si512(kQ4Tables.scale);
  const __m512i spread_x = spread4(0);
  const __m512i low4 = _mm512_set1_epi8(15);
  __m512 acc[4];
  for (auto& a : acc) a = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= n_blocks; b += 4) {
    const __m512i xlo = _mm512_loadu_si512(x.q4x.data() + b * 32);
    const __m512i xhi = _mm512_loadu_si512(x.q4x.data() + b * 32 + 64);
    const __m512i init = _mm512_loadu_si512(x.init4.data() + b * 4);
    const __m512 sx =
        _mm512_permutexvar_ps(spread_x, _mm512_castps128_ps512(_mm_loadu_ps(x.d.data() + b)));
    for (int r = 0; r < 4; ++r) {
      const uint8_t* grp = rows[r] + b * kBytes;
      _mm_prefetch(reinterpret_cast<const char*>(grp + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(grp + ahead + 64), _MM_HINT_T0);
      const __m512i a = _mm512_loadu_si512(grp);
      const __m512i raw = _mm512_permutex2var_epi8(a, qidx, tail8(grp + 64));
      const __m512 sw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi8(sidx, a)));
      const __m512i lo = _mm512_and_si512(raw, low4);
      const __m512i hi = high_nibbles(raw);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo, xlo), hi, xhi);
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), sx), sw, acc[r]);
    }
  }
  __m256 tail[4];
  dot4_q4_0_tail(rows, x, b, n_blocks, tail);
  for (int r = 0; r < 4; ++r) out[r] = hsum(_mm512_add_ps(acc[r], _mm512_castps256_ps512(tail[r])));
}

// Several tokens through one 4-row tile (batched decode, an expert's few tokens): each group of
// 4 weight blocks is decoded once and dotted with every token's activations, so the weights are
// read as stored, once, and no panel is packed. out[4 * t + r]; NT <= 4.
template <int NT>
__attribute__((target("avx512vbmi,gfni"))) void dot4xn_q4_0_vbmi(const uint8_t* const* rows,
                                                                 const ActQ8* const* xs,
                                                                 int64_t n_blocks, float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  constexpr int64_t kBytes = 18;
  const __m512i qidx = _mm512_load_si512(kQ4Tables.quant),
                sidx = _mm512_load_si512(kQ4Tables.scale);
  const __m512i spread_x = spread4(0);
  const __m512i low4 = _mm512_set1_epi8(15);
  __m512 acc[NT][4];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= n_blocks; b += 4) {
    for (int r = 0; r < 4; ++r) {
      const uint8_t* grp = rows[r] + b * kBytes;
      _mm_prefetch(reinterpret_cast<const char*>(grp + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(grp + ahead + 64), _MM_HINT_T0);
      const __m512i a = _mm512_loadu_si512(grp);
      const __m512i raw = _mm512_permutex2var_epi8(a, qidx, tail8(grp + 64));
      const __m512 sw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi8(sidx, a)));
      const __m512i lo = _mm512_and_si512(raw, low4);
      const __m512i hi = high_nibbles(raw);
      for (int t = 0; t < NT; ++t) {
        const ActQ8& x = *xs[t];
        const __m512i init = _mm512_loadu_si512(x.init4.data() + b * 4);
        const __m512i dot = _mm512_dpbusd_epi32(
            _mm512_dpbusd_epi32(init, lo, _mm512_loadu_si512(x.q4x.data() + b * 32)), hi,
            _mm512_loadu_si512(x.q4x.data() + b * 32 + 64));
        const __m512 sx =
            _mm512_permutexvar_ps(spread_x, _mm512_castps128_ps512(_mm_loadu_ps(x.d.data() + b)));
        acc[t][r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), sx), sw, acc[t][r]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    __m256 tail[4];
    dot4_q4_0_tail(rows, *xs[t], b, n_blocks, tail);
    for (int r = 0; r < 4; ++r)
      out[4 * t + r] = hsum(_mm512_add_ps(acc[t][r], _mm512_castps256_ps512(tail[r])));
  }
}

// The "VBMI" kernels use GFNI too (every CPU with VBMI but Cannon Lake has it).
bool cpu_has_vbmi() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni");
}

}  // namespace

// The multi-token Q4_0 kernel where the CPU has VBMI, else null (callers then run the one-token
// kernel per token).
bool int8_dot4xn_vnni(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                      int64_t n_blocks, float* out) {
  static const bool vbmi = cpu_has_vbmi();
  if (t != DType::q4_0 || !vbmi) return false;
  switch (nt) {
    case 1:
      dot4xn_q4_0_vbmi<1>(rows, xs, n_blocks, out);
      break;
    case 2:
      dot4xn_q4_0_vbmi<2>(rows, xs, n_blocks, out);
      break;
    case 3:
      dot4xn_q4_0_vbmi<3>(rows, xs, n_blocks, out);
      break;
    default:
      dot4xn_q4_0_vbmi<4>(rows, xs, n_blocks, out);
  }
  return true;
}

// quantize_block_q8 over a row (n a multiple of 32) with the same float steps (amax, d = amax /
// 127, x * (1 / d) rounded to nearest even by vcvtps2dq), so the same bits; also each half
// block's code sum and qeo (ActQ8): per 128 codes the even-indexed then the odd-indexed ones,
// by truncating 16-bit pairs to their low and (shifted) high bytes.
void quantize_act_q8_avx512(const float* x, int64_t n, int8_t* q, float* d, int32_t* sum16,
                            int8_t* qeo) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m512 lo = _mm512_loadu_ps(x + b * 32), hi = _mm512_loadu_ps(x + b * 32 + 16);
    // max(|x|, running): vmaxps returns its second operand when either is NaN, as std::max
    // keeps the running value past a NaN.
    const __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, hi), _mm512_andnot_ps(sign, lo));
    __m256 h = _mm256_max_ps(_mm512_extractf32x8_ps(m, 1), _mm512_castps512_ps256(m));
    __m128 f = _mm_max_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
    f = _mm_max_ps(_mm_movehl_ps(f, f), f);
    f = _mm_max_ss(_mm_movehdup_ps(f), f);
    const float amax = _mm_cvtss_f32(f);
    const float db = amax / 127.0f, id = db > 0 ? 1.0f / db : 0.0f;
    d[b] = db;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, vid));
    const __m512i qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, vid));
    sum16[2 * b] = _mm512_reduce_add_epi32(qlo);
    sum16[2 * b + 1] = _mm512_reduce_add_epi32(qhi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32), _mm512_cvtepi32_epi8(qlo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32 + 16), _mm512_cvtepi32_epi8(qhi));
  }
  if (!qeo) return;
  int64_t c = 0;
  for (; c + 128 <= n; c += 128)
    for (int half = 0; half < 2; ++half) {
      const __m512i v = _mm512_loadu_si512(q + c + 64 * half);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qeo + c + 32 * half), _mm512_cvtepi16_epi8(v));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qeo + c + 64 + 32 * half),
                          _mm512_cvtepi16_epi8(_mm512_srai_epi16(v, 8)));
    }
  std::memcpy(qeo + c, q + c, size_t(n - c));
}

// Without the VBMI kernels (the path of AVX-512 CPUs that lack VBMI; tests run it everywhere).
void int8_dot4_vnni_plain(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                          float* out) {
  if (t == DType::q8_0)
    dot4_q8_0(rows, x, n_blocks, out);
  else
    dot4_q4_0(rows, x, n_blocks, out);
}

void int8_dot4_vnni(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                    float* out) {
  static const bool vbmi = cpu_has_vbmi();
  if (!vbmi)
    int8_dot4_vnni_plain(t, rows, x, n_blocks, out);
  else if (t == DType::q8_0)
    dot4_q8_0_vbmi(rows, x, n_blocks, out);
  else
    dot4_q4_0_vbmi(rows, x, n_blocks, out);
}

}  // namespace tern::kernels
