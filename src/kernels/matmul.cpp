#include "kernels/matmul.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "kernels/int8_decode.h"
#include "kernels/int8_gemm.h"

namespace tern::kernels {

namespace {
constexpr int64_t kRowTile = 4;
constexpr int64_t kColChunk = 2048;  // multiple of 128 (fp8 blocks) and 32 (q8_0 / q4_0 blocks)

void row_tile(const MatmulParams& p, const IsaKernels& isa, int64_t r0) {
  const WeightView& w = p.w;
  const int64_t nr = std::min(kRowTile, w.rows - r0);
  alignas(64) float buf[kRowTile][kColChunk];
  const float* rows[kRowTile];
  for (int64_t c0 = 0; c0 < w.cols; c0 += kColChunk) {
    const int64_t n = std::min(kColChunk, w.cols - c0);
    if (p.T == 1 && nr == kRowTile) {  // decode: dequantise in registers, no tile buffer
      float out[kRowTile];
      if (isa.dot4_fused(w, r0, c0, n, p.x + c0, out)) {
        for (int64_t j = 0; j < nr; ++j) p.y[r0 + j] = c0 == 0 ? out[j] : p.y[r0 + j] + out[j];
        continue;
      }
    }
    for (int64_t j = 0; j < kRowTile; ++j)  // a short tile repeats its last row; results dropped
      rows[j] = j < nr ? isa.dequant(w, r0 + j, c0, n, buf[j]) : rows[nr - 1];
    int64_t t = 0;
    for (; t + 4 <= p.T; t += 4) {  // 4 rows x 4 tokens per micro-kernel call
      float out[16];
      const float* xs[4] = {p.x + t * p.ldx + c0, p.x + (t + 1) * p.ldx + c0,
                            p.x + (t + 2) * p.ldx + c0, p.x + (t + 3) * p.ldx + c0};
      isa.dot4x4(rows, xs, n, out);
      for (int64_t j = 0; j < 4; ++j) {
        float* y = p.y + (t + j) * p.ldy + r0;
        for (int64_t r = 0; r < nr; ++r) y[r] = c0 == 0 ? out[4 * j + r] : y[r] + out[4 * j + r];
      }
    }
    for (; t < p.T; ++t) {
      float out[kRowTile];
      isa.dot4(rows, p.x + t * p.ldx + c0, n, out);
      float* y = p.y + t * p.ldy + r0;
      for (int64_t j = 0; j < nr; ++j) y[j] = c0 == 0 ? out[j] : y[j] + out[j];
    }
  }
  if (w.cols == 0)
    for (int64_t t = 0; t < p.T; ++t) std::fill_n(p.y + t * p.ldy + r0, nr, 0.0f);
}
// Decode (one row of x) on Q8_0 / Q4_0 weights with integer dot products: x is quantised once
// here, then every 4-row tile runs over all its blocks. A short last tile repeats its last row.
bool int8_decode(const MatmulParams& p, ThreadPool& tp) {
  const WeightView& w = p.w;
  if (p.T != 1 || (w.dtype != DType::q8_0 && w.dtype != DType::q4_0) || w.cols % 32 != 0)
    return false;
  const Int8Dot4 kernel = int8_dot4_kernel();
  if (!kernel) return false;
  thread_local ActQ8 xq;
  quantize_act_q8(p.x, w.cols, xq);
  const int64_t n_tiles = (w.rows + kRowTile - 1) / kRowTile, n_blocks = w.cols / 32;
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * tp.size()));
  const ActQ8& x = xq;  // workers read the calling thread's buffer
  tp.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t r0 = tile * kRowTile, nr = std::min(kRowTile, w.rows - r0);
      const uint8_t* rows[kRowTile];
      for (int64_t j = 0; j < kRowTile; ++j) rows[j] = w.row_ptr(r0 + std::min(j, nr - 1));
      float out[kRowTile];
      kernel(w.dtype, rows, x, n_blocks, out);
      std::copy_n(out, nr, p.y + r0);
    }
  });
  return true;
}

}  // namespace

void require_weight_dtype(const WeightView& w, const char* who) {
  if (!weight_dtype_supported(w.dtype))
    fail(ErrorKind::format, std::string(who) + ": weights of dtype " +
                                std::string(dtype_name(w.dtype)) +
                                " cannot be computed with (supported: f32, bf16, f16, "
                                "f8_e4m3, q8_0, q4_0)");
}

void matmul(const MatmulParams& p, ThreadPool* pool, const IsaKernels* isa) {
  if (p.T <= 0 || p.w.rows <= 0) return;
  require_weight_dtype(p.w, "matmul");
  const IsaKernels& k = isa ? *isa : active_isa();
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
  if (int8_activations() && !isa &&
      (int8_decode(p, tp) || (p.T > 1 && int8_gemm(p.x, p.ldx, p.T, p.w, p.y, p.ldy, tp))))
    return;
  const int64_t n_tiles = (p.w.rows + kRowTile - 1) / kRowTile;
  // Small problems run on one thread: waking the pool costs more than the work.
  const int64_t work = p.T * p.w.rows * p.w.cols;
  const int64_t grain =
      work < (1 << 16) ? n_tiles : std::max<int64_t>(1, n_tiles / (8 * tp.size()));
  tp.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t tile = b; tile < e; ++tile) row_tile(p, k, tile * kRowTile);
  });
}

}  // namespace tern::kernels
