#include "kernels/bf16_decode.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/isa.h"

namespace tern::kernels {

void bf16_dot4_avx512bf16(const Bf16Rows& w, const ActBF16& x, float* out);  // cpu/bf16_dot.cpp
void bf16_dot4x4_avx512bf16(const uint16_t* const* w, const uint16_t* const* x, int nt, int64_t n,
                            float* out);  // cpu/bf16_dot.cpp
// f32 -> bf16, nearest even (vcvtneps2bf16: values below 2^-126 become 0).
void round_bf16_avx512bf16(const float* src, int64_t n, uint16_t* dst);  // cpu/bf16_dot.cpp

namespace {
constexpr int64_t kGemmChunk = 2048;  // columns of a tile dequantised at once (a multiple of 128)
}  // namespace

void round_act_bf16(const float* x, int64_t n, ActBF16& out) {
  out.v.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) out.v[size_t(i)] = f32_to_bf16(x[i]);
  out.v64 = out.v;
  for (int64_t g = 0; g + 64 <= n; g += 64)
    for (int64_t lane = 0; lane < 4; ++lane)
      for (int64_t j = 0; j < 8; ++j) {
        out.v64[size_t(g + 8 * lane + j)] = out.v[size_t(g + 16 * lane + j)];
        out.v64[size_t(g + 32 + 8 * lane + j)] = out.v[size_t(g + 16 * lane + 8 + j)];
      }
}

Bf16Rows bf16_rows(const WeightView& w, int64_t r0) {
  Bf16Rows b;
  b.dtype = w.dtype;
  b.cols = w.cols;
  b.block_cols = w.block_cols;
  tile_rows(w, r0, b.rows, w.dtype == DType::f8_e4m3 ? b.scales : nullptr);
  return b;
}

void bf16_dot4_ref(const Bf16Rows& w, const ActBF16& xa, float* out) {
  const uint16_t* x = xa.v.data();
  const bool fp8 = w.dtype == DType::f8_e4m3;
  for (int r = 0; r < 4; ++r) {
    float acc = 0, part = 0;
    for (int64_t c = 0; c < w.cols; ++c) {
      uint16_t h;
      if (fp8) {
        h = f32_to_bf16(fp8_e4m3_to_f32(w.rows[r][c]));  // exact: every e4m3 value is a bf16
      } else {
        std::memcpy(&h, w.rows[r] + 2 * c, 2);
      }
      part += bf16_to_f32(h) * bf16_to_f32(x[c]);
      const bool block_end = fp8 && ((c + 1) % w.block_cols == 0 || c + 1 == w.cols);
      if (block_end) {
        acc += part * (w.scales[r] ? w.scales[r][c / w.block_cols] : 1.0f);
        part = 0;
      }
    }
    out[r] = fp8 ? acc : part;
  }
}

Bf16Dot4 bf16_dot4_avx512bf16_if_supported() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }();
  return ok ? bf16_dot4_avx512bf16 : nullptr;
}

Bf16Dot4 bf16_dot4_kernel() {
  static const Bf16Dot4 chosen = []() -> Bf16Dot4 {
    if (std::string(active_isa().name) != "avx512") return nullptr;
    return bf16_dot4_avx512bf16_if_supported();
  }();
  return chosen;
}

void bf16_dot4x4_ref(const uint16_t* const* w, const uint16_t* const* x, int nt, int64_t n,
                     float* out) {
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < 4; ++r) {
      float acc = 0;
      for (int64_t c = 0; c < n; ++c) acc += bf16_to_f32(w[r][c]) * bf16_to_f32(x[t][c]);
      out[4 * t + r] = acc;
    }
}

Bf16Dot4x4 bf16_dot4x4_avx512bf16_if_supported() {
  return bf16_dot4_avx512bf16_if_supported() ? bf16_dot4x4_avx512bf16 : nullptr;
}

bool bf16_gemm(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y, int64_t ldy,
               ThreadPool& pool) {
  if (!bf16_dot4_kernel()) return false;
  const Bf16Dot4x4 kernel = bf16_dot4x4_avx512bf16;
  const IsaKernels& isa = active_isa();
  // x in bf16, each row padded with zeros to whole groups of 32.
  const int64_t padded = (w.cols + 31) / 32 * 32;
  thread_local std::vector<uint16_t> xb;
  xb.assign(size_t(T * padded), 0);
  for (int64_t t = 0; t < T; ++t)
    round_bf16_avx512bf16(x + t * ldx, w.cols, xb.data() + t * padded);
  const uint16_t* xs_all = xb.data();  // workers read the calling thread's buffer
  const int64_t n_tiles = (w.rows + 3) / 4;
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * pool.size()));
  pool.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    alignas(64) float f32[kGemmChunk];
    thread_local std::vector<uint16_t> wb;
    wb.resize(size_t(4 * kGemmChunk));
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t r0 = tile * 4, nr = std::min<int64_t>(4, w.rows - r0);
      for (int64_t c0 = 0; c0 < w.cols; c0 += kGemmChunk) {
        const int64_t n = std::min(kGemmChunk, w.cols - c0), np = (n + 31) / 32 * 32;
        const uint16_t* rows[4];
        for (int64_t j = 0; j < 4; ++j) {
          uint16_t* dst = wb.data() + j * kGemmChunk;
          const float* src = isa.dequant(w, r0 + std::min(j, nr - 1), c0, n, f32);
          round_bf16_avx512bf16(src, n, dst);
          std::fill(dst + n, dst + np, uint16_t(0));
          rows[j] = dst;
        }
        for (int64_t t0 = 0; t0 < T; t0 += 4) {
          const int nt = int(std::min<int64_t>(4, T - t0));
          const uint16_t* xs[4];
          for (int t = 0; t < nt; ++t) xs[t] = xs_all + (t0 + t) * padded + c0;
          float out[16];
          kernel(rows, xs, nt, np, out);
          for (int t = 0; t < nt; ++t) {
            float* yr = y + (t0 + t) * ldy + r0;
            for (int64_t j = 0; j < nr; ++j)
              yr[j] = c0 == 0 ? out[4 * t + j] : yr[j] + out[4 * t + j];
          }
        }
      }
      if (w.cols == 0)
        for (int64_t t = 0; t < T; ++t) std::fill_n(y + t * ldy + r0, nr, 0.0f);
    }
  });
  return true;
}

bool bf16_decode_eligible(const WeightView& w) {
  if (w.cols % 32) return false;
  if (w.dtype == DType::bf16) return true;
  return w.dtype == DType::f8_e4m3 && w.block_cols % 32 == 0;
}

}  // namespace tern::kernels
