// AVX-512 BF16 micro-kernel of the low-precision training GEMM (lowp_gemm.h): an 8 x 32 tile in
// 16 zmm accumulators; each packed B pair-row is two loads and each A pair one broadcast feeding
// two vdpbf16ps (32 products each). Per chunk the partial sums are scaled and added to C, which
// stays in L1 between chunks. Compiled with its own -m flags; returned only when CPUID reports
// AVX-512 BF16.
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/avx512_transpose.h"
#include "kernels/fp8_scaling.h"
#include "kernels/lowp_gemm.h"

namespace tern::kernels {
namespace {

constexpr int MR = 8, NR = 32;

inline __m512 truncate14(__m512 v) {
  return _mm512_castsi512_ps(
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int(0xfffffc00u))));
}

// kRows: A packed as rows (row i's pairs at a + i * ars), else as [kp][MR].
template <bool kLimited, bool kRows>
void run(int64_t kp, int64_t cp, const uint32_t* a, int64_t ars, const uint32_t* b, const float* sa,
         const float* sb, float* c, int64_t ldc, bool accumulate) {
  // C's two lines per row requested for writing now, so their fetch overlaps the products (the
  // AVX2 kernel's finding: a once-written output's lines otherwise come from DRAM on the stores).
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + NR - 1, 1, 3);
  }
  for (int64_t p0 = 0, ch = 0; p0 < kp; p0 += cp, ++ch) {
    const int64_t pe = p0 + cp < kp ? p0 + cp : kp;
    __m512 acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t p = p0; p < pe; ++p) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR);
      const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * NR + 16);
      for (int i = 0; i < MR; ++i) {
        const uint32_t pair = kRows ? a[i * ars + p] : a[p * MR + i];
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(pair));
        if constexpr (kLimited) {
          const __m512 z = _mm512_setzero_ps();
          acc[i][0] = truncate14(_mm512_add_ps(acc[i][0], _mm512_dpbf16_ps(z, ai, b0)));
          acc[i][1] = truncate14(_mm512_add_ps(acc[i][1], _mm512_dpbf16_ps(z, ai, b1)));
        } else {
          acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
          acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
      }
    }
    const bool first = !accumulate && ch == 0;
    __m512 s0 = _mm512_set1_ps(1.0f), s1 = s0;
    if (sa) s0 = _mm512_loadu_ps(sb + ch * NR), s1 = _mm512_loadu_ps(sb + ch * NR + 16);
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      __m512 v0 = acc[i][0], v1 = acc[i][1];
      if (sa) {
        const __m512 si = _mm512_set1_ps(sa[ch * MR + i]);
        v0 = _mm512_mul_ps(v0, _mm512_mul_ps(si, s0));
        v1 = _mm512_mul_ps(v1, _mm512_mul_ps(si, s1));
      }
      if (!first) {
        v0 = _mm512_add_ps(_mm512_loadu_ps(ci), v0);
        v1 = _mm512_add_ps(_mm512_loadu_ps(ci + 16), v1);
      }
      _mm512_storeu_ps(ci, v0);
      _mm512_storeu_ps(ci + 16, v1);
    }
  }
}

void micro(int64_t kp, int64_t cp, const uint32_t* a, int64_t ars, const uint32_t* b,
           const float* sa, const float* sb, float* c, int64_t ldc, bool accumulate,
           bool limited14) {
  with_lowp_variant(limited14, ars != 0, [&](auto limited, auto rows) {
    run<decltype(limited)::value, decltype(rows)::value>(kp, cp, a, ars, b, sa, sb, c, ldc,
                                                         accumulate);
  });
}

// 16 floats rounded to E4M3 exactly as e4m3_round does (ties to even, saturating, NaN kept).
inline __m512 e4m3_round16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  const __m512i sign = _mm512_andnot_si512(_mm512_set1_epi32(0x7fffffff), u);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(mag, 20), _mm512_set1_epi32(1));
  __m512i r =
      _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(mag, _mm512_set1_epi32(0x7ffff)), lsb),
                       _mm512_set1_epi32(int(0xfff00000u)));
  r = _mm512_min_epu32(r, _mm512_set1_epi32(0x43e00000));  // 448
  const __m512 sub = _mm512_mul_ps(
      _mm512_roundscale_ps(_mm512_mul_ps(_mm512_castsi512_ps(mag), _mm512_set1_ps(512.0f)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
      _mm512_set1_ps(1.0f / 512.0f));
  r = _mm512_mask_mov_epi32(r, _mm512_cmplt_epu32_mask(mag, _mm512_set1_epi32(0x3c800000)),
                            _mm512_castps_si512(sub));
  const __m512 out = _mm512_castsi512_ps(_mm512_or_si512(r, sign));
  return _mm512_mask_mov_ps(out, _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7f800000)), v);
}

// Mask of the first n lanes; n may be negative (a tail past the end) and then selects none.
inline __mmask16 lanes(int64_t n) {
  if (n <= 0) return 0;
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
}

// Panels whose op-rows are contiguous along K (activations x, weights in the forward): each row
// is scaled, rounded and converted to pairs on its own, then the [w][kp] words are transposed.
void pack_k_contiguous(const LowpPanel& j) {
  const int64_t kp = (j.kb + 1) / 2;
  thread_local std::vector<uint32_t> words;
  thread_local std::vector<float> row;
  // Grown only: a vector shrunk and regrown zero-fills the regrown part on every panel.
  if (words.size() < size_t(j.w * kp)) words.resize(size_t(j.w * kp));
  if (row.size() < size_t(2 * kp + 32)) row.resize(size_t(2 * kp + 32));
  const int64_t chunks = j.e4m3 ? (j.kb + j.chunk - 1) / j.chunk : 0, kbase = j.k0 / j.chunk;
  for (int64_t i = 0; i < j.w; ++i) {
    uint32_t* wi = j.rows_layout ? j.dst + i * kp : words.data() + i * kp;
    if (i >= j.rows) {
      std::fill_n(wi, kp, 0u);
      for (int64_t c = 0; c < chunks; ++c) j.scales[c * j.w + i] = 1.0f;
      continue;
    }
    const float* src = j.p + (j.i0 + i) * j.ld + j.k0;
    if (i + 1 < j.rows)  // the next row's lines, while this one converts
      for (int64_t k = 0; k < j.kb; k += 16)
        _mm_prefetch((const char*)(src + j.ld + k), _MM_HINT_T0);
    if (j.e4m3) {
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t c0 = c * j.chunk, c1 = std::min(j.kb, c0 + j.chunk);
        float s;
        if (j.grid) {
          s = j.grid[size_t((j.i0 + i) / kFp8Tile * j.grid_k + kbase + c)];
        } else {
          __m512 amax = _mm512_setzero_ps();
          for (int64_t k = c0; k < c1; k += 16)
            amax =
                _mm512_max_ps(amax, _mm512_abs_ps(_mm512_maskz_loadu_ps(lanes(c1 - k), src + k)));
          s = fp8_scale(_mm512_reduce_max_ps(amax), j.pow2);
        }
        j.scales[c * j.w + i] = s;
        const __m512 sv = _mm512_set1_ps(s);
        for (int64_t k = c0; k < c1; k += 16) {
          const __mmask16 m = lanes(c1 - k);
          _mm512_mask_storeu_ps(row.data() + k, m,
                                e4m3_round16(_mm512_div_ps(_mm512_maskz_loadu_ps(m, src + k), sv)));
        }
      }
      src = row.data();
    }
    for (int64_t k = 0; k < j.kb; k += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(lanes(j.kb - k), src + k);
      const __m512 hi = _mm512_maskz_loadu_ps(lanes(j.kb - k - 16), src + k + 16);
      const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
      _mm512_mask_storeu_epi32(wi + k / 2, lanes(kp - k / 2), pairs);
    }
  }
  if (j.rows_layout) return;
  for (int64_t p = 0; p < kp; ++p) {
    uint32_t* d = j.dst + p * j.w;
    for (int64_t i = 0; i < j.w; ++i) d[i] = words[size_t(i * kp + p)];
  }
}

// Panels whose op-rows are contiguous across rows of memory (dyᵀ and x in the weight gradient,
// W in the input gradient): 16 op-rows per vector, two K rows interleaved into pairs.
void pack_k_strided(const LowpPanel& j) {
  const int64_t kp = (j.kb + 1) / 2, kbase = j.e4m3 ? j.k0 / j.chunk : 0;
  const __m512i interleave =
      _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int g = 0; g < j.w; g += 16) {
    const int width = std::min(16, j.w - g);
    const __mmask16 store = lanes(width);
    const __mmask16 load = lanes(std::max<int64_t>(0, std::min<int64_t>(width, j.rows - g)));
    const float* col = j.p + j.k0 * j.ld + j.i0 + g;
    alignas(64) float sc[16];
    __m512 scale = _mm512_set1_ps(1.0f);
    int64_t chunk_end = -1;
    for (int64_t p = 0; p < kp; ++p) {
      const int64_t k = 2 * p;
      if (j.e4m3 && k >= chunk_end) {  // a new chunk: its scales
        const int64_t c = k / j.chunk, c0 = c * j.chunk;
        chunk_end = std::min(j.kb, c0 + j.chunk);
        if (j.grid) {
          for (int l = 0; l < 16; ++l)
            sc[l] = g + l < j.rows
                        ? j.grid[size_t((j.i0 + g + l) / kFp8Tile * j.grid_k + kbase + c)]
                        : 1.0f;
        } else {
          __m512 amax = _mm512_setzero_ps();
          for (int64_t kk = c0; kk < chunk_end; ++kk)
            amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_maskz_loadu_ps(load, col + kk * j.ld)));
          _mm512_store_ps(sc, amax);
          for (int l = 0; l < 16; ++l) sc[l] = fp8_scale(sc[l], j.pow2);
        }
        for (int l = 0; l < width; ++l) j.scales[c * j.w + g + l] = sc[l];
        scale = _mm512_load_ps(sc);
      }
      if (k + 8 < j.kb) {  // eight K rows ahead: a strided walk the hardware prefetcher misses
        _mm_prefetch((const char*)(col + (k + 8) * j.ld), _MM_HINT_T0);
        _mm_prefetch((const char*)(col + (k + 9) * j.ld), _MM_HINT_T0);
      }
      __m512 lo = _mm512_maskz_loadu_ps(load, col + k * j.ld);
      __m512 hi =
          k + 1 < j.kb ? _mm512_maskz_loadu_ps(load, col + (k + 1) * j.ld) : _mm512_setzero_ps();
      if (j.e4m3) {
        lo = e4m3_round16(_mm512_div_ps(lo, scale));
        hi = e4m3_round16(_mm512_div_ps(hi, scale));
      }
      const __m512i bf = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
      _mm512_mask_storeu_epi32(j.dst + p * j.w + g, store,
                               _mm512_permutexvar_epi16(interleave, bf));
    }
  }
}

// LowpSweep: two rows of memory at a time, 16 op-rows per vector, each vector's 16 pair-words
// stored into the panels its columns belong to.
void sweep(const LowpSweep& s) {
  const __m512i interleave =
      _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int64_t width = (s.n + s.w - 1) / s.w * s.w;  // every panel's columns, padding included
  for (int64_t pr = s.p0; pr < s.p1; ++pr) {
    const float* r0 = s.p + (s.k0 + 2 * pr) * s.ld;
    const float* r1 = r0 + s.ld;
    const bool odd_tail = 2 * pr + 1 >= s.kb;
    for (int64_t c = 0; c < width; c += 16) {
      const __mmask16 m = lanes(s.n - c);
      const __m512 lo = _mm512_maskz_loadu_ps(m, r0 + c);
      const __m512 hi = odd_tail ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, r1 + c);
      const __m512i words =
          _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
      if (s.w % 16 == 0) {
        _mm512_storeu_si512(s.dst + c / s.w * s.panel_stride + pr * s.w + c % s.w, words);
      } else if (s.w == 8) {
        _mm256_storeu_si256((__m256i*)(s.dst + c / 8 * s.panel_stride + pr * 8),
                            _mm512_castsi512_si256(words));
        if (c + 8 < width)
          _mm256_storeu_si256((__m256i*)(s.dst + (c / 8 + 1) * s.panel_stride + pr * 8),
                              _mm512_extracti64x4_epi64(words, 1));
      } else {
        alignas(64) uint32_t w16[16];
        _mm512_store_si512(w16, words);
        for (int l = 0; l < 16 && c + l < width; ++l)
          s.dst[(c + l) / s.w * s.panel_stride + pr * s.w + (c + l) % s.w] = w16[l];
      }
    }
  }
}

// Bf16Layouts: rows converted 32 values at a time; pairs built 16 row pairs x 16 columns at a
// time (two rows interleaved into words, as the sweep does, then transposed so each column's
// 16 words are one 64-byte store).
// 16 words to dst: a whole aligned cache line goes around the caches (the layouts are read
// back by GEMMs after the whole matrix is written, far too late for them to still be cached,
// and a streamed line needs no read for ownership; not when the caller reads them back at once,
// Bf16Layouts::cached), anything else is a masked store.
inline void store_words(uint32_t* dst, __mmask16 m, __m512i v, bool cached) {
  if (!cached && m == 0xffff && (reinterpret_cast<uintptr_t>(dst) & 63) == 0)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), v);
  else
    _mm512_mask_storeu_epi32(dst, m, v);
}

void bf16_layouts(const Bf16Layouts& j) {
  const int64_t kp = (j.cols + 1) / 2;
  if (j.rows)
    for (int64_t r = j.r0; r < j.r1; ++r) {
      const float* src = j.x + r * j.ld;
      uint32_t* dst = j.rows + r * j.rows_stride;
      for (int64_t k = 0; k < j.cols; k += 32) {
        const __m512 lo = _mm512_maskz_loadu_ps(lanes(j.cols - k), src + k);
        const __m512 hi = _mm512_maskz_loadu_ps(lanes(j.cols - k - 16), src + k + 16);
        store_words(dst + k / 2, lanes(kp - k / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo), j.cached);
      }
    }
  if (!j.pairs) return _mm_sfence();
  const __m512i interleave =
      _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int64_t q_end = (j.r1 + 1) / 2;
  for (int64_t q0 = j.r0 / 2; q0 < q_end; q0 += 16) {
    const int64_t nq = std::min<int64_t>(16, q_end - q0);
    for (int64_t c = 0; c < j.cols; c += 16) {
      const __mmask16 m = lanes(j.cols - c);
      __m512i v[16];
      for (int64_t q = 0; q < 16; ++q) {
        const int64_t r = 2 * (q0 + q);
        if (q >= nq) {
          v[q] = _mm512_setzero_si512();
          continue;
        }
        const __m512 lo = _mm512_maskz_loadu_ps(m, j.x + r * j.ld + c);
        const __m512 hi =
            r + 1 < j.r1 ? _mm512_maskz_loadu_ps(m, j.x + (r + 1) * j.ld + c) : _mm512_setzero_ps();
        v[q] = _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
      }
      transpose16(v);
      const __mmask16 store = lanes(nq);
      for (int64_t l = 0; l < 16 && c + l < j.cols; ++l)
        store_words(j.pairs + (c + l) * j.pairs_stride + q0, store, v[l], j.cached);
    }
  }
  _mm_sfence();  // streamed lines visible before another thread reads them
}

void pack(const LowpPanel& j) {
  if (j.k_contiguous)
    pack_k_contiguous(j);
  else
    pack_k_strided(j);
}

bool cpu_has_avx512_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

}  // namespace

// 16 independent vdpbf16ps chains on registers: the unit's throughput, 64 FLOPs each.
double dpbf16_peak_flops_loop(int64_t reps) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = a;  // pairs of 1.0
  for (int64_t r = 0; r < reps; ++r)
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = _mm512_add_ps(sum, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return 64.0 * 16.0 * double(reps);
}

const LowpMicroKernel* lowp_micro_avx512bf16() {
  static const LowpMicroKernel k{"avx512bf16", MR, NR, micro, pack, sweep, 1, true, bf16_layouts};
  static const bool ok = cpu_has_avx512_bf16();
  return ok ? &k : nullptr;
}

}  // namespace tern::kernels
