#include "model/grad/loss_grad.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/phase_timer.h"
#include "kernels/cpu/isa.h"
#include "kernels/lowp_gemm.h"
#include "model/grad/linear_grad.h"

namespace tern::model::grad {

double lm_head_ce(const Linear& head, Linear* dhead, const float* hn, const int32_t* target,
                  int64_t N, float weight, float* dhn, bool accumulate, Buffer& scratch,
                  ThreadPool& pool, const TargetWeight* per_target, const RowLoss* row_loss) {
  const phase::Scope timer(phase::head_and_loss);
  const int64_t V = head.view.rows, d = head.view.cols;
  // Tokens per pass: as many as 16M logits hold (64 MB; at least 128), so the head's weight is
  // packed for the GEMMs a few times per step rather than once per 128 tokens.
  const int64_t kChunk =
      std::max<int64_t>(128, (int64_t(16) << 20) / std::max<int64_t>(V, 1) / 128 * 128);
  const int64_t rows_max = std::min(N, kChunk);
  // Rows one cache line longer than V: the 32 rows a rounding task reads side by side would
  // otherwise sit a multiple of 4 KB apart, all in one L1 set.
  const int64_t ldl = V + 16;
  const bool bf16 = dhead && bf16_backward_applies(head, *dhead);
  // In bf16 each thread's block of logits is its own (gemm_lowp_row_blocks); else all of them.
  float* logits = bf16 ? nullptr : take(scratch, rows_max * ldl);
  // In bf16 the logit gradient is rounded once, as each 32-row block finishes, into the layouts
  // of both backward GEMMs (each would otherwise pack the f32 [N, V] matrix on its own).
  std::optional<Bf16Grad> grad;
  if (bf16) grad.emplace(rows_max, V);
  constexpr int64_t kBlock = kBf16GradBlock;
  double total = 0;
  const kernels::IsaKernels& isa = kernels::active_isa();
  for (int64_t r0 = 0; r0 < N; r0 += kChunk) {
    const int64_t n = std::min(kChunk, N - r0);
    // Kept between calls (a step allocates nothing); the pool's threads write through the
    // pointer, not their own thread_local copies.
    thread_local std::vector<double> row_losses;
    row_losses.assign(size_t(n), 0.0);
    double* const row_loss_out = row_losses.data();
    // Row i's loss, and its logits l turned into their gradient in place.
    const auto row = [&](int64_t i, float* l) {
      const int32_t t = target[r0 + i];
      if (t < 0) {
        std::fill_n(l, V, 0.0f);
        return;
      }
      if (row_loss) {
        row_loss_out[i] = (*row_loss)(r0 + i, l, V);
        return;
      }
      const float mx = isa.max_scaled(l, V, 1.0f), lt = l[t];
      // exp(l - mx) in place (SIMD, within 2 ulp), summed in double in the same pass; the
      // softmax is then one multiply per logit instead of a second exp.
      const double sum = isa.exp_affine_sum(l, 1.0f, -mx, l, V);
      row_loss_out[i] = double(mx) + std::log(sum) - double(lt);
      const float wt = per_target ? (*per_target)(r0 + i, -row_loss_out[i]) : weight;
      const float inv = float(double(wt) / sum);
      for (int64_t v = 0; v < V; ++v) l[v] *= inv;
      l[t] -= wt;
    };
    if (bf16) {
      // Each block of rows goes through softmax and rounding as soon as the forward GEMM has
      // finished it, while it is in the thread's caches: the [n, V] logits never make the trip
      // to memory and back.
      kernels::gemm_lowp_row_blocks(
          {n, V, d, hn + r0 * d, d, false, f32(head), d, true, nullptr, ldl, false},
          *head.train_lowp, kBlock,
          [&](int64_t i0, int64_t i1, float* rows) {
            for (int64_t i = i0; i < i1; ++i) row(i, rows + (i - i0) * ldl);
            grad->round(rows, ldl, i0, i1);
          },
          &pool);
    } else {
      linear_fwd(head, hn + r0 * d, n, logits, pool, 0, ldl);
      pool.parallel_for((n + kBlock - 1) / kBlock, 1, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b * kBlock; i < std::min(n, e * kBlock); ++i) row(i, logits + i * ldl);
      });
    }
    for (double x : row_losses) total += x;
    if (!dhead) continue;
    if (bf16) {
      linear_bwd_bf16(head, *dhead, *grad, hn + r0 * d, n, dhn + r0 * d, accumulate, pool);
      continue;
    }
    linear_bwd_weight(*dhead, logits, hn + r0 * d, n, pool, ldl);
    linear_bwd_input(head, logits, n, dhn + r0 * d, accumulate, pool, ldl);
  }
  return total;
}

}  // namespace tern::model::grad
