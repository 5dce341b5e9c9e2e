// Causal multi-head attention over windows of T tokens, naive form (scores materialised), as
// MLA trains (spec §6.2). Forward saves the probabilities; backward is the textbook
// softmax-attention gradient. Each (window, head) pair is one task, so results do not depend on
// the thread count.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace tern::model::grad {

struct AttentionShape {
  int64_t B = 0, T = 0, H = 0;  // windows, tokens per window, heads
  int64_t dq = 0, dv = 0;       // query/key and value head dims
  float scale = 1.0f;           // softmax scale
  // The score and value GEMMs take bf16 inputs (f32 sums; softmax stays f32): set when the
  // layer trains at --precision bf16 or fp8, whose recipes keep attention at bf16.
  bool bf16 = false;
};

// q, k: [B*T, H, dq]; v: [B*T, H, dv]; P: [B, H, T, T] (saved, upper triangle zero);
// o: [B*T, H * dv].
void attention_fwd(const AttentionShape& s, const float* q, const float* k, const float* v,
                   float* P, float* o, ThreadPool& pool);
// dq, dk: [B*T, H, dq]; dv: [B*T, H, dv], all overwritten. dO: [B*T, H * dv].
void attention_bwd(const AttentionShape& s, const float* q, const float* k, const float* v,
                   const float* P, const float* dO, float* dq, float* dk, float* dv,
                   ThreadPool& pool);

// The two ways attention_fwd / attention_bwd compute, with the same bits. In bf16, where the
// micro-kernel reads A as bf16 rows (kernels::lowp_rows_a_supported), each (window, head)
// rounds and packs its queries, keys and values once, and each row block's probabilities and
// score gradients once, for all the products that read them (attention_bf16.cpp); otherwise
// every product is a gemm / gemm_lowp call that packs its own operands (the generic form, kept
// callable so tests can compare the two).
bool attention_packs_once(const AttentionShape& s);
void attention_fwd_generic(const AttentionShape& s, const float* q, const float* k, const float* v,
                           float* P, float* o, ThreadPool& pool);
void attention_bwd_generic(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const float* P, const float* dO, float* dq, float* dk, float* dv,
                           ThreadPool& pool);
void attention_fwd_bf16(const AttentionShape& s, const float* q, const float* k, const float* v,
                        float* P, float* o, ThreadPool& pool);
void attention_bwd_bf16(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* P, const float* dO, float* dq, float* dk, float* dv,
                        ThreadPool& pool);
// Where task `task` (window task / H, head task % H) starts in q / k ([B*T, H, dq]) and in v /
// o ([B*T, H, dv]): row t of the head at + t * H * dq, or + t * H * dv.
struct HeadOffsets {
  int64_t q, v;
};
inline HeadOffsets head_offsets(const AttentionShape& s, int64_t task) {
  const int64_t b = task / s.H, h = task % s.H;
  return {b * s.T * s.H * s.dq + h * s.dq, b * s.T * s.H * s.dv + h * s.dv};
}
// Rows per block: block [r0, r1) attends to keys [0, r1) only, so the products skip the upper
// triangle past each block (about 40% of the work at T = 256).
constexpr int64_t kAttentionRowBlock = 64;
// The softmax of score row t (keys [0, t], scaled; the rest of the row zeroed), in place.
void attention_softmax_row(float* row, int64_t t, int64_t T, float scale);
// dS = P ⊙ (dP − Σ_j P dP) · scale for row t over keys [0, t], in place in dP's row; keys
// (t, r1) zeroed, where P is zero.
void attention_dscore_row(const float* p_row, float* ds_row, int64_t t, int64_t r1, float scale);

}  // namespace tern::model::grad
