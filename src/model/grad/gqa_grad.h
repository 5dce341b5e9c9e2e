// Grouped-query attention for training (the dense R1-Distill students, spec §11): q/k/v
// projections (with Qwen2's biases), RoPE over the whole head, each KV head shared by a group of
// query heads, o_proj. The KV heads are expanded to one copy per query head so the attention
// core is the same as MLA's; the backward sums each group's copies back.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/attention_grad.h"
#include "model/grad/rope_grad.h"
#include "model/grad/saved.h"
#include "model/weights.h"

namespace tern::model::grad {

struct GqaSaved {
  Buffer q, k, v;  // [N, H, hd] after RoPE (k, v expanded to every query head)
  Buffer kr, vr;   // [N, Hkv, hd] projections (k after RoPE)
  Buffer P, o;     // [B, H, T, T], [N, H * hd]
  Buffer dq, dk, dv, dkr, dvr;
};

struct GqaContext {
  const ModelConfig* c = nullptr;
  int64_t B = 0, T = 0;
  const RopeAngles* rope = nullptr;  // over head_dim
  ThreadPool* pool = nullptr;
};

// out[N, d] = attention(x[N, d]).
void gqa_fwd(const GqaContext& ctx, const GqaWeights& w, const float* x, float* out, GqaSaved& s);
// dx[N, d] = ∂/∂x (overwritten); weight and bias gradients accumulate into g.
void gqa_bwd(const GqaContext& ctx, const GqaWeights& w, GqaWeights& g, const float* x,
             const float* dout, float* dx, GqaSaved& s);

}  // namespace tern::model::grad
