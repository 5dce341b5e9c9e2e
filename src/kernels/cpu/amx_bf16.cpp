// The AMX BF16 pieces of amx_gemm.h: tile configuration, packing activations and weight rows
// into tile layouts, the tile loop over one weight panel x one block of 32 tokens, and the
// transposed store into y. Compiled with AMX and AVX-512 BF16 flags; amx_gemm.cpp calls these
// only after CPUID and the kernel said yes.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx512_transpose.h"

namespace tern::kernels::amx {
namespace {

// Tiles: 0-3 accumulators C[h][half] (weight-row half h, token half), 4-5 weights A[h],
// 6-7 activations B[half]; every tile 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// 32 floats from p (n of them valid, the rest zero) as 16 bf16 pairs, rounded to nearest even.
inline __m512i bf16_pairs(const float* p, int64_t n) {
  if (n >= 32) return __m512i(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p)));
  if (n <= 0) return _mm512_setzero_si512();
  const __mmask16 lo = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __mmask16 hi = n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1);
  return __m512i(
      _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, p + 16), _mm512_maskz_loadu_ps(lo, p)));
}

}  // namespace

void load_tile_config() {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) cfg.colsb[i] = 64, cfg.rows[i] = 16;
  // Not _tile_loadconfig: GCC 12's version names only the first 8 bytes as the asm's input,
  // so the compiler may drop the stores that fill the rest of the configuration.
  __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
}

// One block of 32 tokens (rows t < nt of x valid), all nks steps of 32 columns (K valid):
// dst[(s * 2 + half) * 512 + k2 * 32 + t * 2 + e] = bf16(x[half * 16 + t][32 s + 2 k2 + e]).
void pack_acts(const float* x, int64_t ldx, int nt, int64_t K, int64_t nks, uint16_t* dst) {
  for (int half = 0; half < 2; ++half) {
    for (int64_t s = 0; s < nks; ++s) {
      __m512i r[16];
      for (int t = 0; t < 16; ++t) {
        const int tok = half * 16 + t;
        r[t] = tok < nt ? bf16_pairs(x + tok * ldx + 32 * s, K - 32 * s) : _mm512_setzero_si512();
      }
      transpose16(r);
      uint16_t* tile = dst + (s * 2 + half) * 512;
      for (int k2 = 0; k2 < 16; ++k2) _mm512_storeu_si512(tile + k2 * 32, r[k2]);
    }
  }
}

// One dequantised weight row (n valid values) into a panel of 32 rows: row slot `dst` (the
// panel base + row * 32), 1024 bf16 per step of 32 columns, nks steps; columns past n are zero.
void pack_weight_row(const float* w, int64_t n, int64_t nks, uint16_t* dst) {
  for (int64_t s = 0; s < nks; ++s)
    _mm512_storeu_si512(dst + s * 1024, bf16_pairs(w + 32 * s, n - 32 * s));
}

void zero_weight_row(int64_t nks, uint16_t* dst) {
  for (int64_t s = 0; s < nks; ++s) _mm512_storeu_si512(dst + s * 1024, _mm512_setzero_si512());
}

// c[(h * 2 + half) * 256 + r * 16 + t] (+)= sum over the panel's ns steps of weights wp (panel
// layout of pack_weight_row) times the token block's activation steps s0 .. s0 + ns of `acts`
// (pack_acts layout, nks steps per half).
void panel_block(const uint16_t* wp, const uint16_t* acts, int64_t nks, int64_t s0, int64_t ns,
                 float* c, bool first) {
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  } else {
    _tile_loadd(0, c, 64);
    _tile_loadd(1, c + 256, 64);
    _tile_loadd(2, c + 512, 64);
    _tile_loadd(3, c + 768, 64);
  }
  const uint16_t* b0 = acts + s0 * 1024;
  const uint16_t* b1 = b0 + 512;
  for (int64_t s = 0; s < ns; ++s) {
    _tile_loadd(4, wp + s * 1024, 64);
    _tile_loadd(5, wp + s * 1024 + 512, 64);
    _tile_loadd(6, b0 + s * 1024, 64);
    _tile_loadd(7, b1 + s * 1024, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_stored(1, c + 256, 64);
  _tile_stored(2, c + 512, 64);
  _tile_stored(3, c + 768, 64);
}

// y[t * ldy + r] = c's value for weight row r < nr and token t < nt of the block.
void store_block(const float* c, float* y, int64_t ldy, int nt, int nr) {
  for (int h = 0; h < 2; ++h) {
    const int rows = nr - 16 * h;
    if (rows <= 0) break;
    const __mmask16 mask = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
    for (int half = 0; half < 2; ++half) {
      const float* tile = c + (h * 2 + half) * 256;
      __m512i r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(tile + i * 16);
      transpose16(r);  // r[t] = the tile's column t: 16 weight rows of token t
      for (int t = 0; t < 16 && half * 16 + t < nt; ++t)
        _mm512_mask_storeu_ps(y + (half * 16 + t) * ldy + 16 * h, mask, _mm512_castsi512_ps(r[t]));
    }
  }
}

// The tile unit's own rate: `steps` rounds of 4 TDPBF16PS on tiles loaded once (no memory
// traffic), for benchmarks to state the peak the GEMM is measured against. Returns the flops.
double peak_flops(int64_t steps) {
  alignas(64) static const uint16_t zeros[512] = {};
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  _tile_loadd(6, zeros, 64);
  _tile_loadd(7, zeros, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t s = 0; s < steps; ++s) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float sink[256];
  _tile_stored(0, sink, 64);
  return double(steps) * 4 * 16 * 16 * 32 * 2 + double(sink[0]) * 0;
}

}  // namespace tern::kernels::amx
