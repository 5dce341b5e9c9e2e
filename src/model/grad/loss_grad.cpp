#include "model/grad/loss_grad.h"

#include <algorithm>
#include <cmath>

#include "core/phase_timer.h"
#include "kernels/cpu/isa.h"
#include "kernels/lowp_gemm.h"
#include "kernels/reduce.h"
#include "model/grad/linear_grad.h"

namespace tern::model::grad {

double lm_head_ce(const Linear& head, Linear* dhead, const float* hn, const int32_t* target,
                  int64_t N, float weight, float* dhn, bool accumulate, HeadScratch& scratch,
                  ThreadPool& pool, const TargetWeight* per_target, const RowLoss* row_loss) {
  const phase::Scope timer(phase::head_and_loss);
  const int64_t V = head.view.rows, d = head.view.cols;
  // Tokens per pass: as many as 16M logits hold (64 MB; at least 128), so the head's weight is
  // packed for the GEMMs a few times per step rather than once per 128 tokens.
  const int64_t kChunk =
      std::max<int64_t>(128, (int64_t(16) << 20) / std::max<int64_t>(V, 1) / 128 * 128);
  const int64_t rows_max = std::min(N, kChunk);
  float* logits = take(scratch.logits, rows_max * V);
  // In bf16 the logit gradient is rounded once, as each 32-row block finishes, into the layouts
  // of both backward GEMMs (each would otherwise pack the f32 [N, V] matrix on its own). Strides
  // one cache line past a multiple of 16 words, so rows 4 KB apart do not share L1 sets.
  const bool bf16 = dhead && bf16_backward_applies(head, *dhead);
  const auto padded = [](int64_t n, int64_t to) { return (n + to - 1) / to * to; };
  const int64_t rows_stride = padded((V + 1) / 2, 16) + 16;
  const int64_t pairs_stride = padded((rows_max + 1) / 2, 16) + 16;
  if (bf16) {
    scratch.rows.resize(size_t(padded(rows_max, kernels::kLowpRowsPad) * rows_stride));
    scratch.pairs.resize(size_t(padded(V, kernels::kLowpRowsPad) * pairs_stride));
  }
  constexpr int64_t kBlock = 32;  // rows per task: 16 row pairs, one 64-byte store per column
  double total = 0;
  const kernels::IsaKernels& isa = kernels::active_isa();
  for (int64_t r0 = 0; r0 < N; r0 += kChunk) {
    const int64_t n = std::min(kChunk, N - r0);
    linear_fwd(head, hn + r0 * d, n, logits, pool);
    std::vector<double> row_loss_out(size_t(n), 0.0);
    pool.parallel_for((n + kBlock - 1) / kBlock, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t blk = b; blk < e; ++blk) {
        const int64_t i0 = blk * kBlock, i1 = std::min(n, i0 + kBlock);
        for (int64_t i = i0; i < i1; ++i) {
          float* l = logits + i * V;
          const int32_t t = target[r0 + i];
          if (t < 0) {
            std::fill_n(l, V, 0.0f);
            continue;
          }
          if (row_loss) {
            row_loss_out[size_t(i)] = (*row_loss)(r0 + i, l, V);
            continue;
          }
          const float mx = kernels::max_scaled_f32(l, V), lt = l[t];
          // exp(l - mx) in place (SIMD, within 2 ulp), summed in double; the softmax is then
          // one multiply per logit instead of a second exp.
          isa.exp_affine(l, 1.0f, -mx, l, V);
          const double sum = kernels::sum_f64(l, V);
          row_loss_out[size_t(i)] = double(mx) + std::log(sum) - double(lt);
          const float wt = per_target ? (*per_target)(r0 + i, -row_loss_out[size_t(i)]) : weight;
          const float inv = float(double(wt) / sum);
          for (int64_t v = 0; v < V; ++v) l[v] *= inv;
          l[t] -= wt;
        }
        if (bf16)
          kernels::lowp_bf16_layouts({logits, V, V, i0, i1, scratch.rows.data(), rows_stride,
                                      scratch.pairs.data(), pairs_stride});
      }
    });
    for (double x : row_loss_out) total += x;
    if (!dhead) continue;
    if (bf16) {
      linear_bwd_bf16(head, *dhead, {scratch.rows.data(), rows_stride},
                      {scratch.pairs.data(), pairs_stride}, hn + r0 * d, n, dhn + r0 * d,
                      accumulate, pool);
      continue;
    }
    linear_bwd_weight(*dhead, logits, hn + r0 * d, n, pool);
    linear_bwd_input(head, logits, n, dhn + r0 * d, accumulate, pool);
  }
  return total;
}

}  // namespace tern::model::grad
