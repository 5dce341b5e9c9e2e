#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/amx_gemm.h"
#include "kernels/int8_decode.h"
#include "kernels/int8_gemm.h"

namespace tern::kernels {

namespace {
constexpr int64_t kRowTile = 4;
constexpr int64_t kColChunk = 2048;  // multiple of 128 (fp8 blocks) and 32 (q8_0 / q4_0 blocks)
// Below this many tokens the AMX path's per-call packing costs more than its tiles save: 16
// against the f32 path, 32 against the integer GEMM on Q8_0 / Q4_0 (measured with
// bench_matmul's matmul_fast cases, TERN_AMX=0 against 1).
int64_t amx_min_tokens(DType t) {
  return (t == DType::q8_0 || t == DType::q4_0) && int8_gemm_tile_kernel() ? 32 : 16;
}

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
// Up to this many tokens on Q8_0 / Q4_0, tiles read as stored (int8_decode_tokens) beat the
// packed GEMM: bench_matmul's matmul_fast 1408 x 2048 cases (a routed expert) at 2 and 4 tokens,
// and v3-mini-8l's batch-16 decode, where most experts get 1 to 4 tokens; from 8 tokens the
// packed panels pay for themselves.
constexpr int64_t kFewTokens = 4;

bool int8_decode_eligible(const MatmulParams& p) {
  return p.T == 1 && (p.w.dtype == DType::q8_0 || p.w.dtype == DType::q4_0) && p.w.cols % 32 == 0;
}

// Decode (one row of x each) on Q8_0 / Q4_0 weights with integer dot products, for n matmuls in
// one parallel loop over all their 4-row tiles: each distinct x is quantised once, then every
// tile runs over all its blocks. A short last tile repeats its last row. All must be eligible.
bool int8_decode_group(const MatmulParams* ps, int64_t n, ThreadPool& tp) {
  const Int8Dot4 kernel = int8_dot4_kernel();
  if (!kernel) return false;
  thread_local std::vector<ActQ8> acts;
  thread_local std::vector<int64_t> act_of, first_tile;
  if (int64_t(acts.size()) < n) acts.resize(size_t(n));
  act_of.assign(size_t(n), 0);
  first_tile.assign(size_t(n) + 1, 0);
  int64_t n_acts = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t a = 0;  // an x already quantised (gate and up share theirs)
    while (a < i && !(ps[a].x == ps[i].x && ps[a].w.cols == ps[i].w.cols)) ++a;
    if (a == i) {
      quantize_act_q8(ps[i].x, ps[i].w.cols, acts[size_t(n_acts)]);
      act_of[size_t(i)] = n_acts++;
    } else {
      act_of[size_t(i)] = act_of[size_t(a)];
    }
    first_tile[size_t(i) + 1] = first_tile[size_t(i)] + (ps[i].w.rows + kRowTile - 1) / kRowTile;
  }
  const int64_t n_tiles = first_tile[size_t(n)];
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * tp.size()));
  const ActQ8* act = acts.data();  // workers read the calling thread's buffers
  const int64_t* owner_act = act_of.data();
  const int64_t* starts = first_tile.data();
  tp.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    int64_t i = std::upper_bound(starts, starts + n + 1, b) - starts - 1;
    for (int64_t tile = b; tile < e; ++tile) {
      while (tile >= starts[i + 1]) ++i;
      const MatmulParams& p = ps[i];
      const WeightView& w = p.w;
      const int64_t r0 = (tile - starts[i]) * kRowTile, nr = std::min(kRowTile, w.rows - r0);
      const uint8_t* rows[kRowTile];
      for (int64_t j = 0; j < kRowTile; ++j) rows[j] = w.row_ptr(r0 + std::min(j, nr - 1));
      float out[kRowTile];
      kernel(w.dtype, rows, act[owner_act[i]], w.cols / 32, out);
      std::copy_n(out, nr, p.y + r0);
    }
  });
  return true;
}

// A few tokens (batched decode, an expert's share of a batch) on Q8_0 / Q4_0: each token's row
// quantised once, then every 4-row tile read as stored and dotted with all tokens, up to 4 at a
// time; no panels are packed, which at this size costs more than the products (int8_gemm.h).
bool int8_decode_tokens(const MatmulParams& p, ThreadPool& tp) {
  const Int8Dot4 one = int8_dot4_kernel();
  if (!one || p.T > kFewTokens) return false;
  const Int8Dot4xN many = int8_dot4xn_kernel();
  thread_local std::vector<ActQ8> acts;
  if (int64_t(acts.size()) < p.T) acts.resize(size_t(p.T));
  const ActQ8* xs[kFewTokens];
  for (int64_t t = 0; t < p.T; ++t) {
    quantize_act_q8(p.x + t * p.ldx, p.w.cols, acts[size_t(t)]);
    xs[t] = &acts[size_t(t)];  // workers read the calling thread's buffers
  }
  const WeightView& w = p.w;
  const int64_t n_tiles = (w.rows + kRowTile - 1) / kRowTile, nb = w.cols / 32;
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * tp.size()));
  tp.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t r0 = tile * kRowTile, nr = std::min(kRowTile, w.rows - r0);
      const uint8_t* rows[kRowTile];
      for (int64_t j = 0; j < kRowTile; ++j) rows[j] = w.row_ptr(r0 + std::min(j, nr - 1));
      for (int64_t t0 = 0; t0 < p.T; t0 += 4) {
        const int nt = int(std::min<int64_t>(4, p.T - t0));
        float out[16];
        if (!(many && many(w.dtype, rows, xs + t0, nt, nb, out)))
          for (int t = 0; t < nt; ++t) one(w.dtype, rows, *xs[t0 + t], nb, out + 4 * t);
        for (int t = 0; t < nt; ++t) std::copy_n(out + 4 * t, nr, p.y + (t0 + t) * p.ldy + r0);
      }
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
  // The serving kernels: AMX tiles for enough tokens to fill them, else integer dot products.
  if (int8_activations() && !isa && p.T >= amx_min_tokens(p.w.dtype) &&
      !std::strcmp(k.name, "avx512") && amx_gemm(p.x, p.ldx, p.T, p.w, p.y, p.ldy, tp, k))
    return;
  if (int8_activations() && !isa && p.T > 1 && p.T <= kFewTokens &&
      (p.w.dtype == DType::q8_0 || p.w.dtype == DType::q4_0) && p.w.cols % 32 == 0 &&
      int8_decode_tokens(p, tp))
    return;
  if (int8_activations() && !isa &&
      ((int8_decode_eligible(p) && int8_decode_group(&p, 1, tp)) ||
       (p.T > 1 && int8_gemm(p.x, p.ldx, p.T, p.w, p.y, p.ldy, tp))))
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

void matmul_group(const MatmulParams* ps, int64_t n, ThreadPool* pool) {
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
  // The integer decode path takes every eligible matmul in one loop; the rest run one by one.
  thread_local std::vector<MatmulParams> fused;
  fused.clear();
  const bool fast = int8_activations() && int8_dot4_kernel();
  for (int64_t i = 0; i < n; ++i) {
    if (ps[i].T <= 0 || ps[i].w.rows <= 0) continue;
    require_weight_dtype(ps[i].w, "matmul");
    if (fast && int8_decode_eligible(ps[i]))
      fused.push_back(ps[i]);
    else
      matmul(ps[i], &tp);
  }
  if (!fused.empty()) int8_decode_group(fused.data(), int64_t(fused.size()), tp);
}

}  // namespace tern::kernels
