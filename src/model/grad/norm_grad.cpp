#include "model/grad/norm_grad.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/phase_timer.h"
#include "kernels/cpu/isa.h"

namespace tern::model::grad {

void rmsnorm_fwd(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t d,
                 float eps, ThreadPool& pool, int64_t ldx, int64_t ldy) {
  const phase::Scope timer(phase::norm);
  if (!ldx) ldx = d;
  if (!ldy) ldy = d;
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(N, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n) rstd[n] = isa.rmsnorm_row(x + n * ldx, w, y + n * ldy, d, eps);
  });
}

void rmsnorm_bwd(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                 bool accumulate, float* dw, int64_t N, int64_t d, ThreadPool& pool, int64_t ldx,
                 int64_t lddx, int64_t lddy) {
  const phase::Scope timer(phase::norm);
  if (!ldx) ldx = d;
  if (!lddx) lddx = d;
  if (!lddy) lddy = d;
  // dx = r·(w⊙dy − x̂·mean(w⊙dy⊙x̂)), x̂ = r·x; dw = Σ_n dy⊙x̂. Both in one pass over the rows
  // (the pass is memory-bound: a second one for dw re-read x and dy), dw summed per block of
  // kRows rows and the blocks then added in order: the same bits for any thread count.
  constexpr int64_t kRows = 64;
  const int64_t blocks = (N + kRows - 1) / kRows;
  thread_local std::vector<float> partial;  // [blocks, d], the calling thread's (workers share it)
  if (partial.size() < size_t(blocks * d)) partial.resize(size_t(blocks * d));
  float* part = partial.data();
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(blocks, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t blk = b; blk < e; ++blk) {
      float* pdw = part + blk * d;
      std::fill_n(pdw, d, 0.0f);
      for (int64_t n = blk * kRows; n < std::min(N, (blk + 1) * kRows); ++n)
        isa.rmsnorm_bwd_row(dy + n * lddy, x + n * ldx, w, rstd[n], dx + n * lddx, accumulate, pdw,
                            d);
    }
  });
  pool.parallel_for(d, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t blk = 0; blk < blocks; ++blk)
      for (int64_t i = b; i < e; ++i) dw[i] += part[blk * d + i];
  });
}

void embedding_fwd(const float* table, const int32_t* ids, int64_t N, int64_t d, float* out,
                   ThreadPool& pool) {
  pool.parallel_for(N, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n) std::copy_n(table + int64_t(ids[n]) * d, d, out + n * d);
  });
}

void embedding_bwd(const float* dout, const int32_t* ids, int64_t N, int64_t d, float* dtable,
                   ThreadPool& pool) {
  // Threads take slices of the columns, each walking every token in order: a row that several
  // tokens share sums them in token order whatever the thread count.
  pool.parallel_for(d, 32, [&](int64_t c0, int64_t c1, int) {
    for (int64_t n = 0; n < N; ++n) {
      float* row = dtable + int64_t(ids[n]) * d;
      const float* g = dout + n * d;
      for (int64_t i = c0; i < c1; ++i) row[i] += g[i];
    }
  });
}

}  // namespace tern::model::grad
