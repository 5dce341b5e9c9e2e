// Packed int8 GEMM panels (int8_gemm.h) from GGUF k-/i-quant blocks, for prefill on CPUs whose
// only other route re-reads every weight per 4 tokens (AVX2: no bf16 GEMM, no AMX).
//
// A block type's weights are s * (u - offset) + m per 16 values (ggml/unpack.h). The panel keeps
// v = u - center as the int8 weight, centred so the tiles' bounds hold (|v| <= 8 for the 16-bit
// tile, <= 64 for the scaled one), and moves the rest into per-16 terms: the weight is
// dw * sc16 * v + mw with dw * sc16 = s and mw = s * (center - offset) + m. Types with one scale
// per 32 values take dw = s and sc16 = 1; those with per-16 scales that are integers times one
// per-256 factor (Q6_K, Q3_K, Q2_K: d; IQ2_XS / IQ2_S / IQ1_M: d / 8) take that factor as dw and
// the integers as sc16, so a block's integer sum carries the scales exactly.
#include <emmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/ggml/unpack.h"
#include "kernels/int8_gemm.h"

namespace tern::kernels {
namespace {

enum class Tile { small, scaled, wide };  // int8_gemm.h: small_weights, sc16, neither

struct PanelType {
  DType type;
  int center;    // subtracted from the codes u
  Tile tile;     // which tile the centred codes fit
  int d_at;      // per-16 scale types: byte offset of the block's f16 d (kIq1mD: IQ1_M's);
                 // -1: one scale per 32
  float factor;  // dw = d * factor for per-16 types
};

// IQ1_M keeps its f16 d in the top nibbles of its four scale words (bytes 48-55).
constexpr int kIq1mD = 1000;

constexpr PanelType kTypes[] = {
    {DType::q4_1, 8, Tile::small, -1, 0},
    {DType::q5_0, 16, Tile::scaled, -1, 0},
    {DType::q5_1, 16, Tile::scaled, -1, 0},
    {DType::q4_k, 8, Tile::small, -1, 0},
    {DType::q5_k, 16, Tile::scaled, -1, 0},
    {DType::iq4_nl, 128, Tile::wide, -1, 0},
    {DType::iq4_xs, 128, Tile::wide, -1, 0},
    {DType::iq2_xxs, 128, Tile::scaled, -1, 0},
    {DType::iq3_xxs, 128, Tile::scaled, -1, 0},
    {DType::iq3_s, 128, Tile::scaled, -1, 0},
    {DType::iq1_s, 128, Tile::scaled, -1, 0},
    {DType::q6_k, 32, Tile::scaled, 208, 1.0f},
    {DType::q3_k, 4, Tile::scaled, 108, 1.0f},
    {DType::q2_k, 0, Tile::scaled, 80, 1.0f},
    {DType::iq2_xs, 128, Tile::scaled, 0, 0.125f},
    {DType::iq2_s, 128, Tile::scaled, 0, 0.125f},
    {DType::iq1_m, 128, Tile::scaled, kIq1mD, 0.125f},
};

const PanelType* panel_type(DType t) {
  for (const PanelType& p : kTypes)
    if (p.type == t) return &p;
  return nullptr;
}

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// A unit's d: the f16 at d_at, or IQ1_M's (word w's top nibble is bits 4w..4w+3 of it).
float unit_d(const PanelType& pt, const uint8_t* unit) {
  if (pt.d_at != kIq1mD) return f16_at(unit + pt.d_at);
  uint16_t bits = 0;
  for (int w = 0; w < 4; ++w) bits = uint16_t(bits | ((unit[48 + 2 * w + 1] >> 4) << (4 * w)));
  return f16_to_f32(bits);
}

}  // namespace

bool ggml_panel_supported(DType t) {
  return panel_type(t) != nullptr;
}

void pack_panel_ggml(const WeightView& w, int64_t r0, PackedPanel& out) {
  const PanelType* pt = panel_type(w.dtype);
  const ggml::GgmlTypeKernels* k = ggml::ggml_type_kernels(w.dtype);
  TERN_CHECK(pt && k && !w.packed && w.cols % 256 == 0);
  const ggml::UnpackFn unpack = ggml::best_unpacker(w.dtype);  // SIMD where there is one
  const int64_t nb = w.cols / 32, nr = std::min(kPanelRows, w.rows - r0);
  const int64_t be = dtype_block_elems(w.dtype), bb = dtype_block_bytes(w.dtype);
  const bool scaled = pt->tile == Tile::scaled;
  const bool mins = k->has_mins || pt->center != k->offset;
  out.n_blocks = nb;
  out.small_weights = pt->tile == Tile::small;
  out.w.assign(size_t(nb * 32 * kPanelRows), 0);
  out.dw.assign(size_t(nb * kPanelRows), 0.0f);
  out.nws.assign(size_t(nb * kPanelRows), 0);
  out.sc16.assign(scaled ? size_t(nb * 2 * kPanelRows) : 0, 0);
  out.mw.assign(mins ? size_t(nb * 2 * kPanelRows) : 0, 0.0f);
  const __m128i center = _mm_set1_epi8(char(pt->center));
  // Four rows at a time: each row's 256-value unit unpacked, then per 16 values one 4 x 4
  // transpose of 32-bit words writes those rows' 4 k4 groups (rows past the end: codes at the
  // centre, so zero weights).
  ggml::Unpacked p[4];
  for (int64_t r = 0; r < nr; r += 4) {
    for (int q = int(std::min<int64_t>(4, nr - r)); q < 4; ++q) {
      std::memset(p[q].u, pt->center, sizeof p[q].u);
      std::memset(p[q].s, 0, sizeof p[q].s);
      std::memset(p[q].m, 0, sizeof p[q].m);
    }
    for (int64_t c = 0; c < w.cols; c += 256) {  // 8 blocks of 32 per unit
      float dw[4] = {};
      for (int q = 0; q < 4 && r + q < nr; ++q) {
        const uint8_t* unit = w.row_ptr(r0 + r + q) + c / be * bb;
        unpack(unit, 8, &p[q]);
        if (pt->d_at >= 0) dw[q] = unit_d(*pt, unit) * pt->factor;
      }
      for (int g = 0; g < 8; ++g) {
        const int64_t b = c / 32 + g;
        for (int q = 0; q < 4; ++q) {
          const size_t at = size_t(b * kPanelRows + r + q);
          int sc[2] = {1, 1};
          if (pt->d_at >= 0) {  // the per-16 scales as integer multiples of dw
            // (A non-finite d, from a damaged file, keeps sc 1: the outputs turn inf / NaN as
            // the exact path's do.)
            for (int h = 0; h < 2 && std::isfinite(dw[q]); ++h) {
              const float s = p[q].s[2 * g + h];
              sc[h] = dw[q] == 0.0f ? 0 : int(std::lrint(s / dw[q]));
              TERN_CHECK(float(sc[h]) * dw[q] == s);  // the formats' scales are integers times d
            }
            out.dw[at] = dw[q];
          } else {
            out.dw[at] = p[q].s[2 * g];
          }
          int32_t nws = 0;
          for (int h = 0; h < 2; ++h) {
            const __m128i u =
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[q].u + 32 * g + 16 * h));
            const __m128i sad = _mm_sad_epu8(u, _mm_setzero_si128());
            const int sum_v = _mm_cvtsi128_si32(sad) + _mm_extract_epi16(sad, 4) - 16 * pt->center;
            nws -= 128 * sc[h] * sum_v;
            const size_t half = size_t((2 * b + h) * kPanelRows + r + q);
            if (scaled) out.sc16[half] = int16_t(sc[h]);
            if (mins)
              out.mw[half] = p[q].s[2 * g + h] * float(pt->center - k->offset) + p[q].m[2 * g + h];
          }
          out.nws[at] = nws;
        }
        // v = u - center, transposed: word k of row q's 16 values -> k4 group 4 h + k, row r + q
        for (int h = 0; h < 2; ++h) {
          __m128i a[4];
          for (int q = 0; q < 4; ++q)
            a[q] = _mm_sub_epi8(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[q].u + 32 * g + 16 * h)),
                center);
          const __m128i t0 = _mm_unpacklo_epi32(a[0], a[1]), t1 = _mm_unpacklo_epi32(a[2], a[3]);
          const __m128i t2 = _mm_unpackhi_epi32(a[0], a[1]), t3 = _mm_unpackhi_epi32(a[2], a[3]);
          const __m128i words[4] = {_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1),
                                    _mm_unpacklo_epi64(t2, t3), _mm_unpackhi_epi64(t2, t3)};
          int8_t* dst = out.w.data() + b * 32 * kPanelRows + (4 * h) * kPanelRows * 4 + r * 4;
          for (int kk = 0; kk < 4; ++kk)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + kk * kPanelRows * 4), words[kk]);
        }
      }
    }
  }
}

}  // namespace tern::kernels
