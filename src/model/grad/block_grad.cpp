#include "model/grad/block_grad.h"

#include <algorithm>

#include "model/grad/norm_grad.h"

namespace tern::model::grad {
namespace {

MlaContext mla_ctx(const BlockContext& ctx) {
  return {ctx.c, ctx.B, ctx.T, ctx.rope, ctx.pool};
}
GqaContext gqa_ctx(const BlockContext& ctx) {
  return {ctx.c, ctx.B, ctx.T, ctx.rope, ctx.pool};
}
MoeContext moe_ctx(const BlockContext& ctx) {
  return {ctx.c, ctx.B, ctx.T, ctx.balance_weight, ctx.pool, ctx.ep};
}

}  // namespace

void block_fwd(const BlockContext& ctx, const LayerWeights& w, float* h, BlockSaved& s) {
  const ModelConfig& c = *ctx.c;
  ThreadPool& pool = *ctx.pool;
  const int64_t N = ctx.B * ctx.T, d = c.hidden_size;
  const float eps = float(c.rms_norm_eps);
  pool_copy(h, N * d, take(s.h_in, N * d), pool);
  float* x1 = take(s.x1, N * d);
  float* tmp = take(s.tmp, N * d);
  rmsnorm_fwd(h, w.input_layernorm.ptr(), x1, take(s.rstd1, N), N, d, eps, pool);
  if (c.is_mla())
    mla_fwd(mla_ctx(ctx), w.mla, x1, tmp, s.mla);
  else
    gqa_fwd(gqa_ctx(ctx), w.gqa, x1, tmp, s.gqa);
  pool_residual_add(h, tmp, N * d, take(s.h_mid, N * d), pool);
  float* x2 = take(s.x2, N * d);
  rmsnorm_fwd(h, w.post_attention_layernorm.ptr(), x2, take(s.rstd2, N), N, d, eps, pool);
  if (w.is_moe)
    moe_fwd(moe_ctx(ctx), w.moe, x2, tmp, s.moe);
  else
    mlp_fwd(w.mlp, x2, N, tmp, s.mlp, pool);
  pool_residual_add(h, tmp, N * d, nullptr, pool);
}

void block_bwd(const BlockContext& ctx, const LayerWeights& w, LayerWeights& g, float* dh,
               BlockSaved& s) {
  const ModelConfig& c = *ctx.c;
  ThreadPool& pool = *ctx.pool;
  const int64_t N = ctx.B * ctx.T, d = c.hidden_size;
  float* dx = take(s.dx, N * d);
  if (w.is_moe)
    moe_bwd(moe_ctx(ctx), w.moe, g.moe, s.x2.data(), dh, dx, s.moe);
  else
    mlp_bwd(w.mlp, g.mlp, s.x2.data(), dh, N, dx, false, s.mlp, pool);
  rmsnorm_bwd(dx, s.h_mid.data(), w.post_attention_layernorm.ptr(), s.rstd2.data(), dh, true,
              g.post_attention_layernorm.data.data_as<float>(), N, d, pool);
  if (c.is_mla())
    mla_bwd(mla_ctx(ctx), w.mla, g.mla, s.x1.data(), dh, dx, s.mla);
  else
    gqa_bwd(gqa_ctx(ctx), w.gqa, g.gqa, s.x1.data(), dh, dx, s.gqa);
  rmsnorm_bwd(dx, s.h_in.data(), w.input_layernorm.ptr(), s.rstd1.data(), dh, true,
              g.input_layernorm.data.data_as<float>(), N, d, pool);
}

}  // namespace tern::model::grad
