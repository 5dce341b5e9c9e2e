// One pre-norm transformer block for training (spec §3): h += attention(norm(h));
// h += FFN(norm(h)); attention MLA or GQA by the architecture, the FFN dense or MoE by the layer.
// Forward and backward side by side.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/gqa_grad.h"
#include "model/grad/mla_grad.h"
#include "model/grad/mlp_grad.h"
#include "model/grad/moe_grad.h"
#include "model/grad/rope_grad.h"
#include "model/weights.h"

namespace tern::model::grad {

struct BlockSaved {
  Buffer h_in, x1, rstd1, h_mid, x2, rstd2;  // [N, d] each, rstd [N]
  Buffer tmp, dx;                            // [N, d] scratch
  MlaSaved mla;
  GqaSaved gqa;
  MlpSaved mlp;
  MoeSaved moe;
};

struct BlockContext {
  const ModelConfig* c = nullptr;
  int64_t B = 0, T = 0;
  const RopeAngles* rope = nullptr;  // over qk_rope_head_dim (MLA) or head_dim (GQA)
  float balance_weight = 0;          // see MoeContext
  ThreadPool* pool = nullptr;
  const ExpertParallel* ep = nullptr;  // see MoeContext
};

// h[N, d] ← block(h), saving what the backward needs.
void block_fwd(const BlockContext& ctx, const LayerWeights& w, float* h, BlockSaved& s);
// dh[N, d]: in dL/d(block output), out dL/d(block input); weight gradients accumulate into g.
void block_bwd(const BlockContext& ctx, const LayerWeights& w, LayerWeights& g, float* dh,
               BlockSaved& s);

}  // namespace tern::model::grad
