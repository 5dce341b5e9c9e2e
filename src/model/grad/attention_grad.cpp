#include "model/grad/attention_grad.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/phase_timer.h"
#include "kernels/cpu/isa.h"
#include "kernels/gemm.h"
#include "kernels/lowp_gemm.h"
#include "kernels/reduce.h"

namespace tern::model::grad {
namespace {

std::vector<float>& task_scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// One of attention's GEMMs at the shape's precision.
void mm(const AttentionShape& s, const kernels::GemmParams& p, ThreadPool& pool) {
  static const kernels::LowpSpec kBf16{};
  if (s.bf16)
    kernels::gemm_lowp(p, kBf16, &pool);
  else
    kernels::gemm(p, &pool);
}

}  // namespace

bool attention_packs_once(const AttentionShape& s) {
  static const kernels::LowpSpec kBf16{};
  return s.bf16 && kernels::lowp_rows_a_supported(kBf16);
}

void attention_fwd(const AttentionShape& s, const float* q, const float* k, const float* v,
                   float* P, float* o, ThreadPool& pool) {
  const phase::Scope timer(phase::attention);
  if (attention_packs_once(s)) return attention_fwd_bf16(s, q, k, v, P, o, pool);
  attention_fwd_generic(s, q, k, v, P, o, pool);
}

void attention_bwd(const AttentionShape& s, const float* q, const float* k, const float* v,
                   const float* P, const float* dO, float* dq, float* dk, float* dv,
                   ThreadPool& pool) {
  const phase::Scope timer(phase::attention);
  if (attention_packs_once(s)) return attention_bwd_bf16(s, q, k, v, P, dO, dq, dk, dv, pool);
  attention_bwd_generic(s, q, k, v, P, dO, dq, dk, dv, pool);
}

void attention_softmax_row(float* row, int64_t t, int64_t T, float scale) {
  const kernels::IsaKernels& isa = kernels::active_isa();
  const float mx = isa.max_scaled(row, t + 1, scale);
  const double sum = isa.exp_affine_sum(row, scale, -mx, row, t + 1);
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j <= t; ++j) row[j] *= inv;
  std::fill(row + t + 1, row + T, 0.0f);
}

void attention_dscore_row(const float* pr, float* row, int64_t t, int64_t r1, float scale) {
  const double dot = kernels::dot_f64(pr, row, t + 1);
  for (int64_t j = 0; j <= t; ++j) row[j] = pr[j] * (row[j] - float(dot)) * scale;
  std::fill(row + t + 1, row + r1, 0.0f);
}

void attention_fwd_generic(const AttentionShape& s, const float* q, const float* k, const float* v,
                           float* P, float* o, ThreadPool& pool) {
  const int64_t T = s.T, H = s.H, ldq = H * s.dq, ldv = H * s.dv;
  pool.parallel_for(s.B * H, 1, [&](int64_t b0, int64_t e0, int) {
    for (int64_t task = b0; task < e0; ++task) {
      const HeadOffsets at = head_offsets(s, task);
      const float* qh = q + at.q;  // [T, dq] stride ldq
      const float* kh = k + at.q;
      const float* vh = v + at.v;
      float* p = P + task * T * T;  // [T, T]
      float* oh = o + at.v;
      for (int64_t r0 = 0; r0 < T; r0 += kAttentionRowBlock) {
        const int64_t r1 = std::min(T, r0 + kAttentionRowBlock), rows = r1 - r0;
        mm(s, {rows, r1, s.dq, qh + r0 * ldq, ldq, false, kh, ldq, true, p + r0 * T, T, false},
           pool);
        for (int64_t t = r0; t < r1; ++t) attention_softmax_row(p + t * T, t, T, s.scale);
        mm(s, {rows, s.dv, r1, p + r0 * T, T, false, vh, ldv, false, oh + r0 * ldv, ldv, false},
           pool);
      }
    }
  });
}

void attention_bwd_generic(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const float* P, const float* dO, float* dq, float* dk, float* dv,
                           ThreadPool& pool) {
  const int64_t T = s.T, H = s.H, ldq = H * s.dq, ldv = H * s.dv;
  pool.parallel_for(s.B * H, 1, [&](int64_t b0, int64_t e0, int) {
    for (int64_t task = b0; task < e0; ++task) {
      const HeadOffsets at = head_offsets(s, task);
      const int64_t oq = at.q, ov = at.v;
      const float* p = P + task * T * T;
      float* ds = task_scratch(size_t(T * T)).data();  // dP, then dS in place
      // dK and dV collect every row block's share: zero this head's slices first.
      for (int64_t t = 0; t < T; ++t) {
        std::fill_n(dk + oq + t * ldq, s.dq, 0.0f);
        std::fill_n(dv + ov + t * ldv, s.dv, 0.0f);
      }
      for (int64_t r0 = 0; r0 < T; r0 += kAttentionRowBlock) {
        const int64_t r1 = std::min(T, r0 + kAttentionRowBlock), rows = r1 - r0;
        float* dsb = ds + r0 * T;
        const float* pb = p + r0 * T;
        // dP = dO · Vᵀ over keys [0, r1)
        mm(s, {rows, r1, s.dv, dO + ov + r0 * ldv, ldv, false, v + ov, ldv, true, dsb, T, false},
           pool);
        // dS = P ⊙ (dP − Σ_j P dP) · scale (zero above the diagonal, where P is zero)
        for (int64_t t = r0; t < r1; ++t)
          attention_dscore_row(p + t * T, ds + t * T, t, r1, s.scale);
        mm(s, {rows, s.dq, r1, dsb, T, false, k + oq, ldq, false, dq + oq + r0 * ldq, ldq, false},
           pool);
        mm(s, {r1, s.dq, rows, dsb, T, true, q + oq + r0 * ldq, ldq, false, dk + oq, ldq, true},
           pool);
        mm(s, {r1, s.dv, rows, pb, T, true, dO + ov + r0 * ldv, ldv, false, dv + ov, ldv, true},
           pool);
      }
    }
  });
}

}  // namespace tern::model::grad
