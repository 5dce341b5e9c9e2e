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

}  // namespace tern::model::grad
