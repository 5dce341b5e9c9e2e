#include "model/grad/mla_grad.h"

#include <algorithm>

#include "model/grad/linear_grad.h"
#include "model/grad/norm_grad.h"

namespace tern::model::grad {
namespace {

struct Dims {
  int64_t N, d, H, dn, dr, dq, dv, rq, rkv;
  float eps;
};

Dims dims(const MlaContext& ctx) {
  const ModelConfig& c = *ctx.c;
  return {ctx.B * ctx.T,      c.hidden_size,        c.num_attention_heads, c.qk_nope_head_dim,
          c.qk_rope_head_dim, c.qk_head_dim(),      c.v_head_dim,          c.q_lora_rank,
          c.kv_lora_rank,     float(c.rms_norm_eps)};
}

// Attention computes at bf16 whenever the layer's projections are low precision (recipes).
AttentionShape attention_shape(const MlaContext& ctx, const Dims& m, const MlaWeights& w) {
  return {
      ctx.B, ctx.T, m.H, m.dq, m.dv, float(ctx.c->softmax_scale()), w.o_proj.train_lowp != nullptr};
}

// q_a and kv_a as one matrix (only with q compression).
const Linear* joint_a(const MlaWeights& w, const Dims& m) {
  if (m.rq == 0) return nullptr;
  return joint_rows(w.q_a_proj, w.kv_a_proj_with_mqa);
}

}  // namespace

void mla_fwd(const MlaContext& ctx, const MlaWeights& w, const float* x, float* out, MlaSaved& s) {
  const Dims m = dims(ctx);
  ThreadPool& pool = *ctx.pool;
  float* q = take(s.q, m.N * m.H * m.dq);
  const int64_t la = m.rkv + m.dr;
  // q_a and kv_a as one GEMM when laid out jointly (joint_rows): qa then kva side by side in
  // s.qa, row stride rq + la; else each in its own buffer.
  const Linear* joint = joint_a(w, m);
  const int64_t lqa = joint ? m.rq + la : m.rq, lka = joint ? m.rq + la : la;
  float* kva;
  if (m.rq > 0) {
    float* qa = take(s.qa, m.N * lqa);
    kva = joint ? qa + m.rq : take(s.kva, m.N * la);
    float* qn = take(s.qa_norm, m.N * m.rq);
    if (joint) {
      linear_fwd(*joint, x, m.N, qa, pool);
    } else {
      linear_fwd(w.q_a_proj, x, m.N, qa, pool);
      linear_fwd(w.kv_a_proj_with_mqa, x, m.N, kva, pool);
    }
    rmsnorm_fwd(qa, w.q_a_layernorm.ptr(), qn, take(s.qa_rstd, m.N), m.N, m.rq, m.eps, pool, lqa);
    linear_fwd(w.q_b_proj, qn, m.N, q, pool);
  } else {
    kva = take(s.kva, m.N * la);
    linear_fwd(w.q_proj, x, m.N, q, pool);
    linear_fwd(w.kv_a_proj_with_mqa, x, m.N, kva, pool);
  }
  ctx.rope->forward(q + m.dn, m.N, m.H * m.dq, pool, m.H, m.dq);

  float* c = take(s.c, m.N * m.rkv);
  rmsnorm_fwd(kva, w.kv_a_layernorm.ptr(), c, take(s.c_rstd, m.N), m.N, m.rkv, m.eps, pool, lka);
  ctx.rope->forward(kva + m.rkv, m.N, lka, pool);  // k_pe: one key shared by all heads

  // kv = W_kvb c; per head rows [k_nope (dn) | v (dv)] (spec §6.1).
  const int64_t lkv = m.H * (m.dn + m.dv);
  float* kv = take(s.dkv, m.N * lkv);  // forward scratch; the backward reuses the buffer
  linear_fwd(w.kv_b_proj, c, m.N, kv, pool);
  float* k = take(s.k, m.N * m.H * m.dq);
  float* v = take(s.v, m.N * m.H * m.dv);
  pool.parallel_for(m.N, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t h = 0; h < m.H; ++h) {
        const float* src = kv + n * lkv + h * (m.dn + m.dv);
        float* kr = k + (n * m.H + h) * m.dq;
        std::copy_n(src, m.dn, kr);
        std::copy_n(kva + n * lka + m.rkv, m.dr, kr + m.dn);
        std::copy_n(src + m.dn, m.dv, v + (n * m.H + h) * m.dv);
      }
  });
  float* o = take(s.o, m.N * m.H * m.dv);
  attention_fwd(attention_shape(ctx, m, w), q, k, v, take(s.P, ctx.B * m.H * ctx.T * ctx.T), o,
                pool);
  linear_fwd(w.o_proj, o, m.N, out, pool);
}

void mla_bwd(const MlaContext& ctx, const MlaWeights& w, MlaWeights& g, const float* x,
             const float* dout, float* dx, MlaSaved& s) {
  const Dims m = dims(ctx);
  ThreadPool& pool = *ctx.pool;
  const int64_t la = m.rkv + m.dr, lkv = m.H * (m.dn + m.dv);
  // The forward's layout (mla_fwd); when joint, dqa and dkva sit side by side in s.dqa too.
  const Linear* joint = joint_a(w, m);
  const int64_t lj = m.rq + la, lqa = joint ? lj : m.rq, lka = joint ? lj : la;
  const float* qa = s.qa.data();
  const float* kva = joint ? qa + m.rq : s.kva.data();
  float* dqa = m.rq > 0 ? take(s.dqa, m.N * lqa) : nullptr;
  float* dkva = joint ? dqa + m.rq : take(s.dkva, m.N * la);
  // o_proj
  float* d_o = s.o.data();  // o is consumed: its buffer takes dO
  linear_bwd(w.o_proj, g.o_proj, dout, s.o.data(), m.N, d_o, false, pool);
  // attention
  float* dq = take(s.dq, m.N * m.H * m.dq);
  float* dk = take(s.dk, m.N * m.H * m.dq);
  float* dv = take(s.dv, m.N * m.H * m.dv);
  attention_bwd(attention_shape(ctx, m, w), s.q.data(), s.k.data(), s.v.data(), s.P.data(), d_o, dq,
                dk, dv, pool);
  // dkv per head from dk_nope and dv; the shared k_pe sums every head's rope part.
  float* dkv = take(s.dkv, m.N * lkv);
  pool.parallel_for(m.N, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n) {
      float* dpe = dkva + n * lka + m.rkv;
      std::fill_n(dpe, m.dr, 0.0f);
      for (int64_t h = 0; h < m.H; ++h) {
        float* dst = dkv + n * lkv + h * (m.dn + m.dv);
        const float* dkr = dk + (n * m.H + h) * m.dq;
        std::copy_n(dkr, m.dn, dst);
        std::copy_n(dv + (n * m.H + h) * m.dv, m.dv, dst + m.dn);
        for (int64_t i = 0; i < m.dr; ++i) dpe[i] += dkr[m.dn + i];
      }
    }
  });
  ctx.rope->backward(dkva + m.rkv, m.N, lka, pool);
  float* dc = take(s.dc, m.N * m.rkv);
  linear_bwd(w.kv_b_proj, g.kv_b_proj, dkv, s.c.data(), m.N, dc, false, pool);
  rmsnorm_bwd(dc, kva, w.kv_a_layernorm.ptr(), s.c_rstd.data(), dkva, false,
              g.kv_a_layernorm.data.data_as<float>(), m.N, m.rkv, pool, lka, lka);
  if (!joint) {
    linear_bwd_weight(g.kv_a_proj_with_mqa, dkva, x, m.N, pool, lka);
    linear_bwd_input(w.kv_a_proj_with_mqa, dkva, m.N, dx, false, pool, lka);
  }
  // queries
  ctx.rope->backward(dq + m.dn, m.N, m.H * m.dq, pool, m.H, m.dq);
  if (m.rq > 0) {
    float* dqn = s.qa_norm.data();  // consumed: reuse for its gradient
    linear_bwd(w.q_b_proj, g.q_b_proj, dq, s.qa_norm.data(), m.N, dqn, false, pool);
    rmsnorm_bwd(dqn, qa, w.q_a_layernorm.ptr(), s.qa_rstd.data(), dqa, false,
                g.q_a_layernorm.data.data_as<float>(), m.N, m.rq, pool, lqa, lqa);
    if (joint) {
      // One input-gradient GEMM over K = rq + la; one weight gradient when the gradients are
      // laid out jointly too (a deferred W keeps a pointer to its Linear: then two).
      Linear* joint_grad = nullptr;
      if (!active_weight_grad_deferral()) joint_grad = joint_rows(g.q_a_proj, g.kv_a_proj_with_mqa);
      if (joint_grad) {
        linear_bwd(*joint, *joint_grad, dqa, x, m.N, dx, false, pool);
      } else {
        linear_bwd_weight(g.q_a_proj, dqa, x, m.N, pool, lj);
        linear_bwd_weight(g.kv_a_proj_with_mqa, dkva, x, m.N, pool, lj);
        linear_bwd_input(*joint, dqa, m.N, dx, false, pool);
      }
    } else {
      linear_bwd(w.q_a_proj, g.q_a_proj, dqa, x, m.N, dx, true, pool);
    }
  } else {
    linear_bwd(w.q_proj, g.q_proj, dq, x, m.N, dx, true, pool);
  }
}

}  // namespace tern::model::grad
