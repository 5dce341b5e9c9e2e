#include "kernels/int8_gemm.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/int8_decode.h"
#include "kernels/packed_tiles.h"

namespace tern::kernels {

void int8_gemm_tile_vnni(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                         const float* const* xd, const float* const* xs16, int nt,
                         float* out);  // cpu/int8_gemm_vnni.cpp
void int8_gemm_tile_avx2(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                         const float* const* xd, const float* const* xs16, int nt,
                         float* out);  // cpu/int8_avx2.cpp
void int8_gemm_tile_avxvnni(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                            const float* const* xd, const float* const* xs16, int nt,
                            float* out);  // cpu/int8_avxvnni.cpp
void quantize_act_row_avx512(const float* x, int64_t n, uint8_t* q, float* d);
void quantize_act_row_avx2(const float* x, int64_t n, uint8_t* q, float* d,
                           float* sum16);  // cpu/quantize_avx2.cpp
void pack_panel_vnni(const WeightView& w, int64_t r0, PackedPanel& out);

namespace {

constexpr int64_t kBlock = 32;
constexpr int64_t kBlockPanelBytes = kBlock * kPanelRows;  // one block of a packed panel

// The 32 signed weights of one Q8_0 / Q4_0 block and its scale.
float unpack_block(DType t, const uint8_t* blk, int8_t* w) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  if (t == DType::q8_0) {
    std::memcpy(w, blk + 2, kBlock);
  } else {  // low nibbles are elements 0..15, high nibbles 16..31, both offset by 8
    for (int j = 0; j < 16; ++j) {
      w[j] = int8_t((blk[2 + j] & 15) - 8);
      w[j + 16] = int8_t((blk[2 + j] >> 4) - 8);
    }
  }
  return f16_to_f32(h);
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

bool cpu_has_vnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

}  // namespace

namespace {
void quantize_act_row(const float* x, int64_t cols, uint8_t* q, float* d) {
  for (int64_t b = 0; b < cols / kBlock; ++b) {
    int8_t s[kBlock];
    d[b] = quantize_block_q8(x + b * kBlock, s);
    for (int64_t j = 0; j < kBlock; ++j) q[b * kBlock + j] = uint8_t(s[j] + 128);
  }
}
}  // namespace

void quantize_act_rows(const float* x, int64_t T, int64_t ldx, int64_t cols, ActQ8Rows& out,
                       ThreadPool* pool, bool with_sums16) {
  TERN_CHECK(cols % kBlock == 0);
  out.T = T;
  out.cols = cols;
  out.q.resize(size_t(T * cols));
  out.d.resize(size_t(T * (cols / kBlock)));
  out.sum16.resize(size_t(T * (cols / 16)));
  static const bool simd = cpu_has_avx512(), avx2 = cpu_has_avx2();
  const auto rows = [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      uint8_t* q = out.q.data() + t * cols;
      float* d = out.d.data() + t * (cols / kBlock);
      if (!simd && avx2) {
        quantize_act_row_avx2(x + t * ldx, cols, q, d, out.sum16.data() + t * (cols / 16));
        continue;
      }
      (simd ? quantize_act_row_avx512 : quantize_act_row)(x + t * ldx, cols, q, d);
      for (int64_t h = 0; h < cols / 16 && with_sums16; ++h) {
        int32_t sum = -16 * 128;
        for (int j = 0; j < 16; ++j) sum += q[h * 16 + j];
        out.sum16[size_t(t * (cols / 16) + h)] = d[h / 2] * float(sum);
      }
    }
  };
  if (pool && T > 1)
    pool->parallel_for(T, 1, rows);
  else
    rows(0, T, 0);
}

void pack_panel(const WeightView& w, int64_t r0, PackedPanel& out, bool simd) {
  TERN_CHECK((w.dtype == DType::q8_0 || w.dtype == DType::q4_0) && w.cols % kBlock == 0);
  out.small_weights = w.dtype == DType::q4_0;
  TERN_CHECK(!w.panels);  // panel-packed views are computed in place (the int8-panels path)
  out.sc16.clear();       // a thread's panel may last have held a GGUF k-quant
  out.mw.clear();
  if (simd && cpu_has_vnni()) return pack_panel_vnni(w, r0, out);  // reads packed views too
  if (w.packed) return pack_panel_from_tiles(w, r0, out);          // prepacked for decode
  const int64_t nb = w.cols / kBlock, nr = std::min(kPanelRows, w.rows - r0);
  const int64_t block_bytes = dtype_block_bytes(w.dtype);
  out.n_blocks = nb;
  out.w.resize(size_t(nb * kBlockPanelBytes));
  out.dw.resize(size_t(nb * kPanelRows));
  out.nws.resize(size_t(nb * kPanelRows));
  if (nr < kPanelRows) {  // rows past the end contribute zeros
    std::fill(out.w.begin(), out.w.end(), int8_t(0));
    std::fill(out.dw.begin(), out.dw.end(), 0.0f);
    std::fill(out.nws.begin(), out.nws.end(), 0);
  }
  for (int64_t r = 0; r < nr; ++r) {
    const uint8_t* row = w.row_ptr(r0 + r);
    for (int64_t b = 0; b < nb; ++b) {
      int8_t v[kBlock];
      out.dw[size_t(b * kPanelRows + r)] = unpack_block(w.dtype, row + b * block_bytes, v);
      int32_t sum = 0;
      for (int64_t j = 0; j < kBlock; ++j) sum += v[j];
      out.nws[size_t(b * kPanelRows + r)] = -128 * sum;
      int8_t* dst = out.w.data() + b * kBlockPanelBytes + r * 4;
      for (int64_t k4 = 0; k4 < kBlock / 4; ++k4)
        std::memcpy(dst + k4 * kPanelRows * 4, v + 4 * k4, 4);
    }
  }
}

void int8_gemm_tile_ref(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                        const float* const* xd, const float* const* xs16, int nt, float* out) {
  for (int t = 0; t < nt; ++t) {
    for (int64_t r = 0; r < kPanelRows; ++r) {
      float acc = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int8_t* wb = p.w.data() + b * kBlockPanelBytes + r * 4;
        int32_t dot = p.nws[size_t(b * kPanelRows + r)];
        for (int64_t j = 0; j < kBlock; ++j) {
          const int32_t sc = p.sc16.empty() ? 1 : p.sc16[size_t((2 * b + j / 16) * kPanelRows + r)];
          dot +=
              sc * int32_t(wb[(j / 4) * kPanelRows * 4 + j % 4]) * int32_t(xq[t][b * kBlock + j]);
        }
        // Fused multiply-adds in the SIMD tiles' order, so they agree to the bit.
        acc = std::fma(float(dot), p.dw[size_t(b * kPanelRows + r)] * xd[t][b], acc);
        for (int64_t h = 2 * b; h < 2 * b + 2 && !p.mw.empty(); ++h)
          acc = std::fma(p.mw[size_t(h * kPanelRows + r)], xs16[t][h], acc);
      }
      out[t * kPanelRows + r] = acc;
    }
  }
}

double vnni_peak_ops(int64_t steps);  // cpu/int8_gemm_vnni.cpp
double avx2_peak_ops(int64_t steps);  // cpu/int8_peak_avx2.cpp

namespace {
// `steps` of `probe` on every thread of the pool at once: GOP/s.
double peak_gops(ThreadPool& pool, double (*probe)(int64_t)) {
  constexpr int64_t kSteps = 1 << 22;  // ~50 ms per thread at 4 GHz
  std::vector<double> ops(size_t(pool.size()), 0.0);
  const auto start = std::chrono::steady_clock::now();
  pool.parallel_for(pool.size(), 1, [&](int64_t b, int64_t e, int thread) {
    for (int64_t i = b; i < e; ++i) ops[size_t(thread)] += probe(kSteps);
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double total = 0;
  for (double o : ops) total += o;
  return total / s / 1e9;
}
}  // namespace

double vnni_int8_peak_gops(ThreadPool& pool) {
  return int8_gemm_tile_vnni_if_supported() ? peak_gops(pool, vnni_peak_ops) : 0.0;
}

double avx2_int8_peak_gops(ThreadPool& pool) {
  return cpu_has_avx2() ? peak_gops(pool, avx2_peak_ops) : 0.0;
}

Int8GemmTile int8_gemm_tile_vnni_if_supported() {
  static const bool ok = cpu_has_vnni();
  return ok ? int8_gemm_tile_vnni : nullptr;
}

Int8GemmTile int8_gemm_tile_avxvnni_if_supported() {
  static const bool ok = cpu_has_avx_vnni();
  return ok ? int8_gemm_tile_avxvnni : nullptr;
}

Int8GemmTile int8_gemm_tile_avx2_if_supported() {
  static const bool ok = cpu_has_avx2();
  return ok ? int8_gemm_tile_avx2 : nullptr;
}

Int8GemmTile int8_gemm_tile_kernel() {
  static const Int8GemmTile chosen = []() -> Int8GemmTile {
    const std::string isa = active_isa().name;
    if (isa == "avx512" && int8_gemm_tile_vnni_if_supported()) return int8_gemm_tile_vnni;
    if (isa == "avx512" || isa == "avx2") {
      if (Int8GemmTile k = int8_gemm_tile_avxvnni_if_supported()) return k;
      return int8_gemm_tile_avx2_if_supported();
    }
    return int8_gemm_tile_ref;
  }();
  return chosen;
}

bool int8_gemm_tile_takes_ggml(Int8GemmTile tile) {
  return tile && (tile == int8_gemm_tile_ref || tile == int8_gemm_tile_avx2_if_supported() ||
                  tile == int8_gemm_tile_avxvnni_if_supported());
}

namespace {
bool takes(const WeightView& w, Int8GemmTile tile) {
  if (!tile) return false;
  if (w.dtype == DType::q8_0 || w.dtype == DType::q4_0) return w.cols % kBlock == 0;
  // GGUF panels are packed from stored blocks (on these CPUs nothing prepacks them)
  return ggml_panel_supported(w.dtype) && int8_gemm_tile_takes_ggml(tile) && !w.packed &&
         w.cols % 256 == 0;
}
}  // namespace

bool int8_gemm_takes(const WeightView& w) {
  return takes(w, int8_gemm_tile_kernel());
}

bool int8_gemm(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y, int64_t ldy,
               ThreadPool& pool, Int8GemmTile tile) {
  if (!tile) tile = int8_gemm_tile_kernel();
  if (!takes(w, tile)) return false;
  const bool ggml = w.dtype != DType::q8_0 && w.dtype != DType::q4_0;
  thread_local ActQ8Rows act;
  quantize_act_rows(x, T, ldx, w.cols, act, &pool, /*with_sums16=*/ggml);
  const ActQ8Rows& xr = act;  // workers read the calling thread's buffer
  const int64_t n_panels = (w.rows + kPanelRows - 1) / kPanelRows;
  // Blocks per chunk: 16 (a 16 KB chunk of weights) for the 256-bit tiles; the AVX-512 tile
  // (not measured with chunks) takes the whole panel at once.
  const int64_t chunk = tile == int8_gemm_tile_vnni_if_supported() ? w.cols / kBlock : 16;
  pool.parallel_for(n_panels, 1, [&](int64_t begin, int64_t end, int) {
    thread_local PackedPanel panel;
    alignas(64) float out[kTileTokens * kPanelRows];
    for (int64_t pi = begin; pi < end; ++pi) {
      const int64_t r0 = pi * kPanelRows, nr = std::min(kPanelRows, w.rows - r0);
      if (ggml)
        pack_panel_ggml(w, r0, panel);
      else
        pack_panel(w, r0, panel, tile != int8_gemm_tile_ref);
      // A chunk of the panel's blocks for all tokens, then the next: the chunk's weights stay
      // in L1 while every token passes (a whole 1536-wide panel is 48 KB); the chunks' sums
      // add in f32.
      for (int64_t b0 = 0; b0 < panel.n_blocks; b0 += chunk) {
        const int64_t b1 = std::min(panel.n_blocks, b0 + chunk);
        for (int64_t t0 = 0; t0 < T; t0 += kTileTokens) {
          const int nt = int(std::min<int64_t>(kTileTokens, T - t0));
          const uint8_t* xs[kTileTokens];
          const float *ds[kTileTokens], *s16[kTileTokens];
          for (int t = 0; t < nt; ++t)
            xs[t] = xr.row(t0 + t), ds[t] = xr.scales(t0 + t), s16[t] = xr.sums16(t0 + t);
          tile(panel, b0, b1, xs, ds, s16, nt, out);
          for (int t = 0; t < nt; ++t) {
            float* yt = y + (t0 + t) * ldy + r0;
            if (b0 == 0)
              std::copy_n(out + t * kPanelRows, nr, yt);
            else
              for (int64_t r = 0; r < nr; ++r) yt[r] += out[t * kPanelRows + r];
          }
        }
      }
    }
  });
  return true;
}

}  // namespace tern::kernels
