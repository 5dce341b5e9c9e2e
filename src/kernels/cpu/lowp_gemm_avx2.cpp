// AVX2 micro-kernel of the low-precision training GEMM (lowp_gemm.h) for CPUs with no bf16
// instructions. The packers round every value to bf16 or E4M3 and store it as f32
// (pair_words 2), so the inner loop is the plain FMA GEMM's: a 6 x 16 tile in 12 ymm
// accumulators, each packed B row two loads, each A value one broadcast. Products of bf16 /
// E4M3 values are exact in f32, so with the odd k of a pair added before the even one (the
// scalar kernel's order) every sum is bit for bit the scalar kernel's. Compiled with -mavx2
// -mfma and without FMA contraction; returned only when CPUID reports AVX2 and FMA.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/fp8_scaling.h"
#include "kernels/lowp_gemm.h"

namespace tern::kernels {
namespace {

constexpr int MR = 6, NR = 16;

inline __m256 truncate14(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(int(0xfffffc00u))));
}

// kRows: A packed as rows (row i's values at a + i * ars), else as [2 kp][MR].
template <bool kLimited, bool kRows>
void run(int64_t kp, int64_t cp, const float* a, int64_t ars, const float* b, const float* sa,
         const float* sb, float* c, int64_t ldc, bool accumulate) {
  const auto a_at = [&](int i, int64_t k) { return kRows ? a + i * ars + k : a + k * MR + i; };
  // C's lines requested for writing now, so their fetch overlaps the products: a large output
  // (logits, a forward's activations) is written once, and its lines come from DRAM (a
  // 2048 x 4096 x 256 forward at one thread: 40-52 -> 67-80 GFLOP/s on the Zen 3).
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + NR - 1, 1, 3);
  }
  for (int64_t p0 = 0, ch = 0; p0 < kp; p0 += cp, ++ch) {
    const int64_t pe = p0 + cp < kp ? p0 + cp : kp;
    __m256 acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t p = p0; p < pe; ++p) {
      const int64_t odd = 2 * p + 1, even = 2 * p;
      if constexpr (kLimited) {  // the pair's sum rounded once, then the 14-bit running sum
        const __m256 bo0 = _mm256_loadu_ps(b + odd * NR), bo1 = _mm256_loadu_ps(b + odd * NR + 8);
        const __m256 be0 = _mm256_loadu_ps(b + even * NR);
        const __m256 be1 = _mm256_loadu_ps(b + even * NR + 8);
        for (int i = 0; i < MR; ++i) {
          const __m256 ao = _mm256_broadcast_ss(a_at(i, odd));
          const __m256 ae = _mm256_broadcast_ss(a_at(i, even));
          const __m256 t0 = _mm256_fmadd_ps(ae, be0, _mm256_mul_ps(ao, bo0));
          const __m256 t1 = _mm256_fmadd_ps(ae, be1, _mm256_mul_ps(ao, bo1));
          acc[i][0] = truncate14(_mm256_add_ps(acc[i][0], t0));
          acc[i][1] = truncate14(_mm256_add_ps(acc[i][1], t1));
        }
      } else {
        for (const int64_t k : {odd, even}) {
          const __m256 b0 = _mm256_loadu_ps(b + k * NR), b1 = _mm256_loadu_ps(b + k * NR + 8);
          for (int i = 0; i < MR; ++i) {
            const __m256 ai = _mm256_broadcast_ss(a_at(i, k));
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
          }
        }
      }
    }
    const bool first = !accumulate && ch == 0;
    __m256 s0 = _mm256_set1_ps(1.0f), s1 = s0;
    if (sa) s0 = _mm256_loadu_ps(sb + ch * NR), s1 = _mm256_loadu_ps(sb + ch * NR + 8);
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      __m256 v0 = acc[i][0], v1 = acc[i][1];
      if (sa) {
        const __m256 si = _mm256_set1_ps(sa[ch * MR + i]);
        v0 = _mm256_mul_ps(v0, _mm256_mul_ps(si, s0));
        v1 = _mm256_mul_ps(v1, _mm256_mul_ps(si, s1));
      }
      if (!first) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(ci), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), v1);
      }
      _mm256_storeu_ps(ci, v0);
      _mm256_storeu_ps(ci + 8, v1);
    }
  }
}

void micro(int64_t kp, int64_t cp, const uint32_t* aw, int64_t ars, const uint32_t* bw,
           const float* sa, const float* sb, float* c, int64_t ldc, bool accumulate,
           bool limited14) {
  const float* a = reinterpret_cast<const float*>(aw);
  const float* b = reinterpret_cast<const float*>(bw);
  with_lowp_variant(limited14, ars != 0, [&](auto limited, auto rows) {
    run<decltype(limited)::value, decltype(rows)::value>(kp, cp, a, ars, b, sa, sb, c, ldc,
                                                         accumulate);
  });
}

inline __m256i splat(uint32_t v) {
  return _mm256_set1_epi32(int(v));
}

// 8 floats rounded to bf16 as f32_to_bf16 does (ties to even; NaN kept with its quiet bit set)
// and widened back: the value the scalar kernel multiplies.
inline __m256 bf16_round8(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), splat(1));
  const __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, splat(0x7fff)), lsb);
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, splat(0x7fffffff)), splat(0x7f800000));
  const __m256i out = _mm256_blendv_epi8(r, _mm256_or_si256(u, splat(0x400000)), nan);
  return _mm256_castsi256_ps(_mm256_and_si256(out, splat(0xffff0000u)));
}

// 8 floats rounded to E4M3 as e4m3_round does (ties to even, saturating, NaN kept), then cut to
// bf16 bits as the scalar packer stores them (exact for every E4M3 value).
inline __m256 e4m3_round8(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i mag = _mm256_and_si256(u, splat(0x7fffffff));
  const __m256i sign = _mm256_andnot_si256(splat(0x7fffffff), u);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(mag, 20), splat(1));
  __m256i r = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(mag, splat(0x7ffff)), lsb),
                               splat(0xfff00000u));
  r = _mm256_min_epu32(r, splat(0x43e00000));  // 448
  const __m256 sub =
      _mm256_mul_ps(_mm256_round_ps(_mm256_mul_ps(_mm256_castsi256_ps(mag), _mm256_set1_ps(512.0f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                    _mm256_set1_ps(1.0f / 512.0f));
  const __m256i small = _mm256_cmpgt_epi32(splat(0x3c800000), mag);  // below 2^-6
  r = _mm256_blendv_epi8(r, _mm256_castps_si256(sub), small);
  __m256i out = _mm256_or_si256(r, sign);
  out = _mm256_blendv_epi8(out, u, _mm256_cmpgt_epi32(mag, splat(0x7f800000)));  // NaN
  return _mm256_castsi256_ps(_mm256_and_si256(out, splat(0xffff0000u)));
}

// Lanes [0, n) of 8 as a maskload / maskstore mask; n <= 0 selects none.
inline __m256i lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::clamp<int64_t>(n, 0, 8))), idx);
}

// The first n floats at p (n clamped to [0, 8]; zeros after) and their store: plain moves when
// all 8 lanes are wanted, since AMD's masked moves are slow (the stores microcoded).
inline __m256 load_first(const float* p, int64_t n) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes(n));
}
inline void store_first(float* p, __m256 v, int64_t n) {
  if (n >= 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, lanes(n), v);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

inline __m256 abs8(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(splat(0x7fffffff)));
}

// Transposes 8 rows of 8 floats in place.
inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m256 s[8];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      const __m256 x = t[4 * i + j], y = t[4 * i + j + 2];
      s[4 * i + 2 * j] = _mm256_shuffle_ps(x, y, 0x44);
      s[4 * i + 2 * j + 1] = _mm256_shuffle_ps(x, y, 0xee);
    }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

// Op-row i of a k-contiguous panel rounded into out[0, 2 kp) (zeros past kb and for rows from
// j.rows on), its chunk scales written to j.scales.
void round_row(const LowpPanel& j, int64_t i, float* out) {
  const int64_t kp = (j.kb + 1) / 2;
  const int64_t chunks = j.e4m3 ? (j.kb + j.chunk - 1) / j.chunk : 0, kbase = j.k0 / j.chunk;
  if (i >= j.rows) {
    std::fill_n(out, 2 * kp, 0.0f);
    for (int64_t c = 0; c < chunks; ++c) j.scales[c * j.w + i] = 1.0f;
    return;
  }
  const float* src = j.p + (j.i0 + i) * j.ld + j.k0;
  // Two rows ahead (a row of an input gradient's dy is a 1 KB stripe of a 16 KB line of
  // memory: the stream prefetchers do not start in time and the loads wait on DRAM).
  if (i + 2 < j.rows)
    for (int64_t k = 0; k < j.kb; k += 16)
      _mm_prefetch((const char*)(src + 2 * j.ld + k), _MM_HINT_T0);
  if (!j.e4m3) {
    for (int64_t k = 0; k < 2 * kp; k += 8) {
      const __m256 x = load_first(src + k, j.kb - k);
      store_first(out + k, j.exact ? x : bf16_round8(x), 2 * kp - k);
    }
    return;
  }
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t c0 = c * j.chunk, c1 = std::min(j.kb, c0 + j.chunk);
    float s;
    if (j.grid) {
      s = j.grid[size_t((j.i0 + i) / kFp8Tile * j.grid_k + kbase + c)];
    } else {
      __m256 amax = _mm256_setzero_ps();
      for (int64_t k = c0; k < c1; k += 8)
        amax = _mm256_max_ps(amax, abs8(load_first(src + k, c1 - k)));
      s = fp8_scale(hmax(amax), j.pow2);
    }
    j.scales[c * j.w + i] = s;
    const __m256 sv = _mm256_set1_ps(s);
    const int64_t end = c + 1 < chunks ? c1 : 2 * kp;  // the last chunk also writes the pad
    for (int64_t k = c0; k < end; k += 8) {
      store_first(out + k, e4m3_round8(_mm256_div_ps(load_first(src + k, c1 - k), sv)), end - k);
    }
  }
}

// Panels whose op-rows are contiguous along K (activations x, weights in the forward): each row
// rounded on its own, straight into place (rows layout) or through 8 x 8 transposes.
void pack_k_contiguous(const LowpPanel& j) {
  const int64_t kp = (j.kb + 1) / 2, kw = 2 * kp;
  if (j.rows_layout) {
    for (int64_t i = 0; i < j.w; ++i) round_row(j, i, reinterpret_cast<float*>(j.dst) + i * kw);
    return;
  }
  thread_local std::vector<float> rows;
  const int64_t stride = (kw + 7) & ~int64_t(7);
  rows.assign(size_t(8 * stride), 0.0f);
  float* dst = reinterpret_cast<float*>(j.dst);
  for (int g = 0; g < j.w; g += 8) {
    const int width = std::min(8, j.w - g);
    for (int r = 0; r < width; ++r) round_row(j, g + r, rows.data() + r * stride);
    for (int64_t k = 0; k < kw; k += 8) {
      __m256 t[8];
      for (int r = 0; r < 8; ++r) t[r] = _mm256_loadu_ps(rows.data() + r * stride + k);
      transpose8(t);
      // A panel narrower than 8 (A's 6) takes whole stores too: the 2 lanes past a row land on
      // the next row, which is stored after it; only the last row is masked.
      for (int r = 0; r < 8 && k + r < kw; ++r)
        store_first(dst + (k + r) * j.w + g, t[r], j.w <= 8 && k + r + 1 < kw ? 8 : width);
    }
  }
}

// Panels whose op-rows are contiguous across rows of memory (dyᵀ and x in the weight gradient,
// W in the input gradient): each K row's w values are a row of the panel already.
void pack_k_strided(const LowpPanel& j) {
  const int64_t kp = (j.kb + 1) / 2, kbase = j.e4m3 ? j.k0 / j.chunk : 0;
  float* dst = reinterpret_cast<float*>(j.dst);
  for (int g = 0; g < j.w; g += 8) {
    const int width = std::min(8, j.w - g);
    const int64_t valid = std::min<int64_t>(width, j.rows - g);
    const float* col = j.p + j.k0 * j.ld + j.i0 + g;
    alignas(32) float sc[8];
    __m256 scale = _mm256_set1_ps(1.0f);
    int64_t chunk_end = -1;
    for (int64_t k = 0; k < 2 * kp; ++k) {
      if (j.e4m3 && k < j.kb && k >= chunk_end) {  // a new chunk: its scales
        const int64_t c = k / j.chunk, c0 = c * j.chunk;
        chunk_end = std::min(j.kb, c0 + j.chunk);
        if (j.grid) {
          for (int l = 0; l < 8; ++l)
            sc[l] = g + l < j.rows
                        ? j.grid[size_t((j.i0 + g + l) / kFp8Tile * j.grid_k + kbase + c)]
                        : 1.0f;
        } else {
          __m256 amax = _mm256_setzero_ps();
          for (int64_t kk = c0; kk < chunk_end; ++kk)
            amax = _mm256_max_ps(amax, abs8(load_first(col + kk * j.ld, valid)));
          _mm256_store_ps(sc, amax);
          for (int l = 0; l < 8; ++l) sc[l] = fp8_scale(sc[l], j.pow2);
        }
        for (int l = 0; l < width; ++l) j.scales[c * j.w + g + l] = sc[l];
        scale = _mm256_load_ps(sc);
      }
      if (k + 8 < j.kb)  // eight K rows ahead: a strided walk the hardware prefetcher misses
        _mm_prefetch((const char*)(col + (k + 8) * j.ld), _MM_HINT_T0);
      __m256 v = _mm256_setzero_ps();
      if (k < j.kb) {
        v = load_first(col + k * j.ld, valid);
        v = j.e4m3 ? e4m3_round8(_mm256_div_ps(v, scale)) : j.exact ? v : bf16_round8(v);
      }
      // Narrow panels (A's 6) store whole vectors but the last row, as pack_k_contiguous does.
      store_first(dst + k * j.w + g, v, j.w <= 8 && k + 1 < 2 * kp ? 8 : width);
    }
  }
}

void pack(const LowpPanel& j) {
  if (j.k_contiguous)
    pack_k_contiguous(j);
  else
    pack_k_strided(j);
}

// LowpSweep in f32 panels: row k of memory rounded (or, exact, copied), 8 columns at a time,
// into row k of the panels its columns belong to.
void sweep(const LowpSweep& s) {
  float* dst = reinterpret_cast<float*>(s.dst);
  const int64_t panels = (s.n + s.w - 1) / s.w;
  for (int64_t k = 2 * s.p0; k < 2 * s.p1; ++k) {
    const bool pad = k >= s.kb;
    const float* row = s.p + (s.k0 + k) * s.ld;
    for (int64_t q = 0; q < panels; ++q) {
      float* out = dst + q * s.panel_stride + k * s.w;
      for (int g = 0; g < s.w; g += 8) {
        const int64_t c = q * s.w + g;
        __m256 v = _mm256_setzero_ps();
        if (!pad) {
          v = load_first(row + c, std::min<int64_t>(s.w - g, s.n - c));
          if (!s.exact) v = bf16_round8(v);
        }
        // A narrow panel's row spills 2 lanes onto its next row, which this call stores later
        // unless k is the last row of its range.
        store_first(out + g, v, s.w <= 8 && k + 1 < 2 * s.p1 ? 8 : s.w - g);
      }
    }
  }
}

}  // namespace

const LowpMicroKernel* lowp_micro_avx2() {
  // A in panels: broadcasts from six row streams cost GCC its registers (~25% slower).
  static const LowpMicroKernel k{"avx2", MR, NR, micro, pack, sweep, 2, false};
  static const bool ok = cpu_has_avx2();
  return ok ? &k : nullptr;
}

}  // namespace tern::kernels
