// bf16 attention with every operand rounded and packed once. The generic form's products pack
// their operands call by call: a head's keys and values once per row block and product, and the
// products are thin (K = 48 for MLA's scores), so packing cost as much as multiplying. Here each
// (window, head) task rounds Q and dO to bf16 rows and packs K and V as B operands once, and each
// row block rounds its probabilities and score gradients once, in the two layouts their
// products read; kernels::gemm_lowp_packed then multiplies on the task's thread. Same sums in
// the same order as the generic form, hence the same bits (tests/model compare them).
#include <algorithm>
#include <vector>

#include "kernels/lowp_gemm.h"
#include "model/grad/attention_grad.h"

namespace tern::model::grad {
namespace {

using kernels::LowpPackedB;
using kernels::LowpRowsA;

int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}

// A matrix in bf16 as an A operand: op-row i's pairs at words + i * stride.
struct RoundedA {
  std::vector<uint32_t> words;
  int64_t stride = 0;
  LowpRowsA at(int64_t row) const { return {words.data() + row * stride, stride}; }
  // Room for `op_rows` op-rows (padded as gemm_lowp_rows_a reads them) of `depth` values.
  uint32_t* size(int64_t op_rows, int64_t depth) {
    stride = (depth + 1) / 2;
    const size_t need = size_t(round_up(op_rows, kernels::kLowpRowsPad) * stride);
    if (words.size() < need) words.resize(need);
    return words.data();
  }
};

// x[rows, cols] (row stride ld) as A = x (its rows) and/or A = xᵀ (its columns' pairs along the
// rows), read back at once.
void round_a(const float* x, int64_t ld, int64_t rows, int64_t cols, RoundedA* as_rows,
             RoundedA* as_cols) {
  kernels::Bf16Layouts job{x, ld, cols, 0, rows, nullptr, 0, nullptr, 0, true};
  if (as_rows) job.rows = as_rows->size(rows, cols), job.rows_stride = as_rows->stride;
  if (as_cols) job.pairs = as_cols->size(cols, rows), job.pairs_stride = as_cols->stride;
  kernels::lowp_bf16_layouts(job);
}

// One thread's operands, kept between tasks and calls: nothing allocated after the first.
struct Scratch {
  RoundedA q, dout, p_rows, p_cols, ds_rows, ds_cols;
  LowpPackedB k_t, v, v_t, k, q_block, dout_block;
  std::vector<float> ds;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

void attention_fwd_bf16(const AttentionShape& s, const float* q, const float* k, const float* v,
                        float* P, float* o, ThreadPool& pool) {
  const int64_t T = s.T, H = s.H, ldq = H * s.dq, ldv = H * s.dv;
  pool.parallel_for(s.B * H, 1, [&](int64_t b0, int64_t e0, int) {
    Scratch& w = scratch();
    for (int64_t task = b0; task < e0; ++task) {
      const HeadOffsets at = head_offsets(s, task);
      const float* qh = q + at.q;  // [T, dq] stride ldq
      const float* kh = k + at.q;
      const float* vh = v + at.v;
      float* p = P + task * T * T;  // [T, T]
      float* oh = o + at.v;
      round_a(qh, ldq, T, s.dq, &w.q, nullptr);
      kernels::lowp_pack_b(kh, ldq, true, T, s.dq, w.k_t);  // S = Q·Kᵀ
      kernels::lowp_pack_b(vh, ldv, false, s.dv, T, w.v);   // O = P·V
      for (int64_t r0 = 0; r0 < T; r0 += kAttentionRowBlock) {
        const int64_t r1 = std::min(T, r0 + kAttentionRowBlock), rows = r1 - r0;
        kernels::gemm_lowp_packed(w.q.at(r0), rows, r1, s.dq, w.k_t, p + r0 * T, T, false);
        for (int64_t t = r0; t < r1; ++t) attention_softmax_row(p + t * T, t, T, s.scale);
        round_a(p + r0 * T, T, rows, r1, &w.p_rows, nullptr);
        kernels::gemm_lowp_packed(w.p_rows.at(0), rows, s.dv, r1, w.v, oh + r0 * ldv, ldv, false);
      }
    }
  });
}

void attention_bwd_bf16(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* P, const float* dO, float* dq, float* dk, float* dv,
                        ThreadPool& pool) {
  const int64_t T = s.T, H = s.H, ldq = H * s.dq, ldv = H * s.dv;
  pool.parallel_for(s.B * H, 1, [&](int64_t b0, int64_t e0, int) {
    Scratch& w = scratch();
    if (w.ds.size() < size_t(kAttentionRowBlock * T)) w.ds.resize(size_t(kAttentionRowBlock * T));
    for (int64_t task = b0; task < e0; ++task) {
      const HeadOffsets at = head_offsets(s, task);
      const int64_t oq = at.q, ov = at.v;
      const float* p = P + task * T * T;
      // dK and dV collect every row block's share: zero this head's slices first.
      for (int64_t t = 0; t < T; ++t) {
        std::fill_n(dk + oq + t * ldq, s.dq, 0.0f);
        std::fill_n(dv + ov + t * ldv, s.dv, 0.0f);
      }
      round_a(dO + ov, ldv, T, s.dv, &w.dout, nullptr);
      kernels::lowp_pack_b(v + ov, ldv, true, T, s.dv, w.v_t);  // dP = dO·Vᵀ
      kernels::lowp_pack_b(k + oq, ldq, false, s.dq, T, w.k);   // dQ = dS·K
      for (int64_t r0 = 0; r0 < T; r0 += kAttentionRowBlock) {
        const int64_t r1 = std::min(T, r0 + kAttentionRowBlock), rows = r1 - r0;
        float* ds = w.ds.data();  // the block's dP, then dS in place: row t at ds + (t - r0) * T
        const float* pb = p + r0 * T;
        kernels::gemm_lowp_packed(w.dout.at(r0), rows, r1, s.dv, w.v_t, ds, T, false);
        for (int64_t t = r0; t < r1; ++t)
          attention_dscore_row(p + t * T, ds + (t - r0) * T, t, r1, s.scale);
        round_a(ds, T, rows, r1, &w.ds_rows, &w.ds_cols);
        kernels::gemm_lowp_packed(w.ds_rows.at(0), rows, s.dq, r1, w.k, dq + oq + r0 * ldq, ldq,
                                  false);
        // dK += dSᵀ·Q and dV += Pᵀ·dO over the block's rows.
        kernels::lowp_pack_b(q + oq + r0 * ldq, ldq, false, s.dq, rows, w.q_block);
        kernels::gemm_lowp_packed(w.ds_cols.at(0), r1, s.dq, rows, w.q_block, dk + oq, ldq, true);
        round_a(pb, T, rows, r1, nullptr, &w.p_cols);
        kernels::lowp_pack_b(dO + ov + r0 * ldv, ldv, false, s.dv, rows, w.dout_block);
        kernels::gemm_lowp_packed(w.p_cols.at(0), r1, s.dv, rows, w.dout_block, dv + ov, ldv, true);
      }
    }
  });
}

}  // namespace tern::model::grad
