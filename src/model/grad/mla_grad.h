// Multi-head Latent Attention for training, naive form (spec §6.2): query compression (or a
// direct q_proj), the normalised KV latent, the shared decoupled RoPE key, causal attention
// and o_proj, with the backward of each step in reverse order beside it. Absorption is an
// inference-only transform and does not appear here.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/attention_grad.h"
#include "model/grad/rope_grad.h"
#include "model/grad/saved.h"
#include "model/weights.h"

namespace tern::model::grad {

struct MlaSaved {
  Buffer qa, qa_rstd, qa_norm;  // [N, q_lora_rank] (q compression only)
  Buffer q;                     // [N, H, dq] after RoPE
  Buffer kva;                   // [N, kv_lora_rank + dr] raw (RoPE part rotated in place)
  Buffer c_rstd, c;             // [N], [N, kv_lora_rank] normalised latent
  Buffer k, v;                  // [N, H, dq], [N, H, dv]
  Buffer P;                     // [B, H, T, T]
  Buffer o;                     // [N, H * dv]
  // backward scratch
  Buffer dq, dk, dv, dkv, dc, dkva, dqa;
};

struct MlaContext {
  const ModelConfig* c = nullptr;
  int64_t B = 0, T = 0;  // windows and tokens per window (N = B * T rows)
  const RopeAngles* rope = nullptr;
  ThreadPool* pool = nullptr;
};

// out[N, d] = MLA(x[N, d]) (x: the normalised block input, kept by the caller).
void mla_fwd(const MlaContext& ctx, const MlaWeights& w, const float* x, float* out, MlaSaved& s);
// dx[N, d] = ∂/∂x (overwritten); weight gradients accumulate into g.
void mla_bwd(const MlaContext& ctx, const MlaWeights& w, MlaWeights& g, const float* x,
             const float* dout, float* dx, MlaSaved& s);

}  // namespace tern::model::grad
