#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/packed_panels.h"
#include "kernels/serving_paths.h"

namespace tern::kernels {

namespace {
constexpr int64_t kRowTile = 4;
constexpr int64_t kColChunk = 2048;  // multiple of 128 (fp8 blocks) and 256 (ggml blocks)
thread_local bool t_serving = false;

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
}  // namespace

void fail_packed_row_read(const char* where) {
  fail(ErrorKind::internal, std::string(where) +
                                ": a packed (tile-major) weight read as rows; unpack it with "
                                "stored_rows / stored_row_segment (packed_tiles.h)");
}

void require_weight_dtype(const WeightView& w, const char* who) {
  if (!weight_dtype_supported(w.dtype))
    fail(ErrorKind::format, std::string(who) + ": weights of dtype " +
                                std::string(dtype_name(w.dtype)) +
                                " cannot be computed with (supported: f32, bf16, f16, "
                                "f8_e4m3, i8, i4 and the GGUF quantisations)");
}

namespace {
thread_local const ScopedMatmulObserver* t_observer = nullptr;
}  // namespace

ScopedMatmulObserver::ScopedMatmulObserver(MatmulObserver fn, void* ctx)
    : fn_(fn), ctx_(ctx), previous_(t_observer) {
  t_observer = this;
}

ScopedMatmulObserver::~ScopedMatmulObserver() {
  t_observer = previous_;
}

void ScopedMatmulObserver::notify(const MatmulParams& p) const {
  if (previous_) previous_->notify(p);
  fn_(p, ctx_);
}

void matmul(const MatmulParams& p, ThreadPool* pool, const IsaKernels* isa) {
  if (p.T <= 0 || p.w.rows <= 0) return;
  require_weight_dtype(p.w, "matmul");
  if (t_observer) t_observer->notify(p);
  const IsaKernels& k = isa ? *isa : active_isa();
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
  if (serving_kernels() && !isa && run_serving_path(p, tp)) return;
  const int64_t n_tiles = (p.w.rows + kRowTile - 1) / kRowTile;
  // Small problems run on one thread: waking the pool costs more than the work.
  const int64_t work = p.T * p.w.rows * p.w.cols;
  const int64_t grain =
      work < (1 << 16) ? n_tiles : std::max<int64_t>(1, n_tiles / (8 * tp.size()));
  tp.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t tile = b; tile < e; ++tile) row_tile(p, k, tile * kRowTile);
  });
}

void matmul_group(const MatmulParams* ps, int64_t n, ThreadPool* pool) {
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
  // The decode paths take every eligible matmul in one loop, and the panel-packed ones with
  // several tokens (a batch's routed experts) another; the rest run one by one.
  thread_local std::vector<MatmulParams> fused, panels;
  fused.clear();
  panels.clear();
  for (int64_t i = 0; i < n; ++i) {
    if (ps[i].T <= 0 || ps[i].w.rows <= 0) continue;
    require_weight_dtype(ps[i].w, "matmul");
    const bool serving = serving_kernels();
    if (serving && decode_eligible(ps[i])) {
      if (t_observer) t_observer->notify(ps[i]);
      fused.push_back(ps[i]);
    } else if (serving && panel_group_takes(ps[i])) {
      if (t_observer) t_observer->notify(ps[i]);
      panels.push_back(ps[i]);
    } else {
      matmul(ps[i], &tp);
    }
  }
  if (!fused.empty()) run_decode_group(fused.data(), int64_t(fused.size()), tp);
  if (!panels.empty()) panel_matmul_group(panels.data(), int64_t(panels.size()), tp);
}

bool serving_kernels() {
  return t_serving;
}

ScopedServingKernels::ScopedServingKernels(bool on) : previous_(t_serving) {
  t_serving = on;
}
ScopedServingKernels::~ScopedServingKernels() {
  t_serving = previous_;
}

}  // namespace tern::kernels
