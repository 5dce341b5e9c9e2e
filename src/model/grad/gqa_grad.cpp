#include "model/grad/gqa_grad.h"

#include <algorithm>

#include "model/grad/linear_grad.h"

namespace tern::model::grad {

void gqa_fwd(const GqaContext& ctx, const GqaWeights& w, const float* x, float* out, GqaSaved& s) {
  const ModelConfig& c = *ctx.c;
  ThreadPool& pool = *ctx.pool;
  const int64_t N = ctx.B * ctx.T, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t hd = c.head_dim, group = H / Hkv;
  float* q = take(s.q, N * H * hd);
  float* kr = take(s.kr, N * Hkv * hd);
  float* vr = take(s.vr, N * Hkv * hd);
  linear_fwd(w.q_proj, x, N, q, pool);
  linear_fwd(w.k_proj, x, N, kr, pool);
  linear_fwd(w.v_proj, x, N, vr, pool);
  ctx.rope->forward(q, N, H * hd, pool, H, hd);
  ctx.rope->forward(kr, N, Hkv * hd, pool, Hkv, hd);
  float* k = take(s.k, N * H * hd);
  float* v = take(s.v, N * H * hd);
  pool.parallel_for(N, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t h = 0; h < H; ++h) {
        std::copy_n(kr + (n * Hkv + h / group) * hd, hd, k + (n * H + h) * hd);
        std::copy_n(vr + (n * Hkv + h / group) * hd, hd, v + (n * H + h) * hd);
      }
  });
  float* o = take(s.o, N * H * hd);
  const AttentionShape as{
      ctx.B, ctx.T, H, hd, hd, float(c.softmax_scale()), w.o_proj.train_lowp != nullptr};
  attention_fwd(as, q, k, v, take(s.P, ctx.B * H * ctx.T * ctx.T), o, pool);
  linear_fwd(w.o_proj, o, N, out, pool);
}

void gqa_bwd(const GqaContext& ctx, const GqaWeights& w, GqaWeights& g, const float* x,
             const float* dout, float* dx, GqaSaved& s) {
  const ModelConfig& c = *ctx.c;
  ThreadPool& pool = *ctx.pool;
  const int64_t N = ctx.B * ctx.T, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t hd = c.head_dim, group = H / Hkv;
  float* d_o = s.o.data();  // o is consumed: its buffer takes dO
  linear_bwd(w.o_proj, g.o_proj, dout, s.o.data(), N, d_o, false, pool);
  float* dq = take(s.dq, N * H * hd);
  float* dk = take(s.dk, N * H * hd);
  float* dv = take(s.dv, N * H * hd);
  const AttentionShape as{
      ctx.B, ctx.T, H, hd, hd, float(c.softmax_scale()), w.o_proj.train_lowp != nullptr};
  attention_bwd(as, s.q.data(), s.k.data(), s.v.data(), s.P.data(), d_o, dq, dk, dv, pool);
  float* dkr = take_zero(s.dkr, N * Hkv * hd);
  float* dvr = take_zero(s.dvr, N * Hkv * hd);
  pool.parallel_for(N, 64, [&](int64_t b, int64_t e, int) {  // rows apart: heads sum in order
    for (int64_t n = b; n < e; ++n)
      for (int64_t h = 0; h < H; ++h) {
        float* kd = dkr + (n * Hkv + h / group) * hd;
        float* vd = dvr + (n * Hkv + h / group) * hd;
        const float* ks = dk + (n * H + h) * hd;
        const float* vs = dv + (n * H + h) * hd;
        for (int64_t i = 0; i < hd; ++i) kd[i] += ks[i], vd[i] += vs[i];
      }
  });
  ctx.rope->backward(dq, N, H * hd, pool, H, hd);
  ctx.rope->backward(dkr, N, Hkv * hd, pool, Hkv, hd);
  linear_bwd_weight(g.q_proj, dq, x, N, pool);
  linear_bwd_weight(g.k_proj, dkr, x, N, pool);
  linear_bwd_weight(g.v_proj, dvr, x, N, pool);
  linear_bwd_input(w.q_proj, dq, N, dx, false, pool);
  linear_bwd_input(w.k_proj, dkr, N, dx, true, pool);
  linear_bwd_input(w.v_proj, dvr, N, dx, true, pool);
}

}  // namespace tern::model::grad
