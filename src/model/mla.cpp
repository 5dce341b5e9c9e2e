#include "model/mla.h"

#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/layer_ops.h"

namespace tern::model {
namespace {

float* alloc(Arena& a, int64_t n, const char* what) {
  return static_cast<float*>(a.allocate(size_t(n) * 4, what));
}

// Queries [T, H, dq] with RoPE applied to each head's last dr dims.
float* project_queries(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                       const AttentionArgs& a, Arena& scratch) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), dn = c.qk_nope_head_dim,
                dr = c.qk_rope_head_dim;
  float* q = alloc(scratch, a.T * H * dq, "mla q");  // [T, H, dq]
  if (c.q_lora_rank > 0) {
    float* cq = alloc(scratch, a.T * c.q_lora_rank, "mla q latent");  // [T, q_lora_rank]
    linear_forward(w.q_a_proj, a.x, a.T, cq);
    kernels::rmsnorm(cq, w.q_a_layernorm.ptr(), cq, a.T, c.q_lora_rank, float(c.rms_norm_eps));
    linear_forward(w.q_b_proj, cq, a.T, q);
  } else {
    linear_forward(w.q_proj, a.x, a.T, q);
  }
  float cs[256], sn[256];  // [dr / 2]; config validation caps dr at 512
  for (int64_t t = 0; t < a.T; ++t) {
    rope.angles(a.pos0 + t, cs, sn);
    for (int64_t h = 0; h < H; ++h)
      kernels::rope_rotate(q + (t * H + h) * dq + dn, dr, cs, sn, rope.interleaved());
  }
  return q;
}

// Appends the new tokens' normalised latent and roped k_pe to the cache.
void write_cache(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                 const LayerCache& cache, const AttentionArgs& a, Arena& scratch) {
  const int64_t rkv = c.kv_lora_rank, dr = c.qk_rope_head_dim;
  float* kv_a = alloc(scratch, a.T * (rkv + dr), "mla kv_a");  // [T, kv_lora_rank + dr]
  linear_forward(w.kv_a_proj_with_mqa, a.x, a.T, kv_a);
  float cs[256], sn[256];
  for (int64_t t = 0; t < a.T; ++t) {
    const int64_t p = a.pos0 + t;
    kernels::rmsnorm(kv_a + t * (rkv + dr), w.kv_a_layernorm.ptr(), cache.a + p * rkv, 1, rkv,
                     float(c.rms_norm_eps));
    float* kpe = cache.b + p * dr;
    std::copy_n(kv_a + t * (rkv + dr) + rkv, dr, kpe);  // RoPE on the un-normalised slice (§6.2)
    rope.angles(p, cs, sn);
    kernels::rope_rotate(kpe, dr, cs, sn, rope.interleaved());
  }
}

void attend_absorbed(const ModelConfig& c, const MlaWeights& w, const LayerCache& cache,
                     const AttentionArgs& a, const float* q, float* o, Arena& scratch) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), dn = c.qk_nope_head_dim,
                dr = c.qk_rope_head_dim;
  const int64_t rkv = c.kv_lora_rank, dv = c.v_head_dim, S = a.pos0 + a.T;
  const float scale = float(c.softmax_scale());
  float* q_abs = alloc(scratch, a.T * H * rkv, "mla q_abs");  // [T, H, rkv]
  float* o_lat = alloc(scratch, a.T * H * rkv, "mla o_lat");  // [T, H, rkv]
  ThreadPool& pool = ThreadPool::global();
  float* scores = alloc(scratch, int64_t(pool.size()) * S, "mla scores");
  for (int64_t h = 0; h < H; ++h)  // q_abs[t, h] = W_UKᵀ_h · q_nope[t, h]
    kernels::matmul(kernels::MatmulParams{q + h * dq, H * dq, q_abs + h * rkv, H * rkv, a.T,
                                          w.uk_t[size_t(h)]});
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(H, 1, [&](int64_t hb, int64_t he, int thread) {
    float* s = scores + int64_t(thread) * S;
    for (int64_t h = hb; h < he; ++h) {
      for (int64_t t = 0; t < a.T; ++t) {
        const int64_t n = a.pos0 + t + 1;  // causal: positions 0..pos0+t
        const float* qa = q_abs + (t * H + h) * rkv;
        const float* qp = q + (t * H + h) * dq + dn;
        for (int64_t j = 0; j < n; ++j)
          s[j] = scale * (isa.dot(qa, cache.a + j * rkv, rkv) + isa.dot(qp, cache.b + j * dr, dr));
        kernels::softmax(s, n);
        float* ol = o_lat + (t * H + h) * rkv;
        for (int64_t j = 0; j < n; ++j) isa.axpy(s[j], cache.a + j * rkv, ol, rkv);
      }
    }
  });
  for (int64_t h = 0; h < H; ++h)  // o[t, h] = W_UV_h · o_lat[t, h]
    kernels::matmul(
        kernels::MatmulParams{o_lat + h * rkv, H * rkv, o + h * dv, H * dv, a.T, w.uv[size_t(h)]});
}

void attend_naive(const ModelConfig& c, const MlaWeights& w, const LayerCache& cache,
                  const AttentionArgs& a, const float* q, float* o, Arena& scratch) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), dn = c.qk_nope_head_dim,
                dr = c.qk_rope_head_dim;
  const int64_t dv = c.v_head_dim, S = a.pos0 + a.T;
  const float scale = float(c.softmax_scale());
  if (w.uk.empty())
    fail(ErrorKind::request,
         "the naive MLA form needs W_UK per head, which this model was loaded without "
         "(LoadOptions::mla_naive)");
  const int64_t rkv = c.kv_lora_rank;
  float* kv = alloc(scratch, S * H * (dn + dv), "mla naive k/v");  // [S, H, dn + dv]
  for (int64_t h = 0; h < H; ++h) {  // k_nope[s, h] = W_UK_h · c_kv[s]; v[s, h] = W_UV_h · c_kv[s]
    float* kh = kv + h * (dn + dv);
    kernels::matmul(kernels::MatmulParams{cache.a, rkv, kh, H * (dn + dv), S, w.uk[size_t(h)]});
    kernels::matmul(
        kernels::MatmulParams{cache.a, rkv, kh + dn, H * (dn + dv), S, w.uv[size_t(h)]});
  }
  ThreadPool& pool = ThreadPool::global();
  float* scores = alloc(scratch, int64_t(pool.size()) * S, "mla scores");
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(H, 1, [&](int64_t hb, int64_t he, int thread) {
    float* s = scores + int64_t(thread) * S;
    for (int64_t h = hb; h < he; ++h) {
      for (int64_t t = 0; t < a.T; ++t) {
        const int64_t n = a.pos0 + t + 1;
        const float* qh = q + (t * H + h) * dq;
        for (int64_t j = 0; j < n; ++j) {
          const float* k_nope = kv + (j * H + h) * (dn + dv);
          s[j] = scale * (isa.dot(qh, k_nope, dn) + isa.dot(qh + dn, cache.b + j * dr, dr));
        }
        kernels::softmax(s, n);
        float* oh = o + (t * H + h) * dv;
        for (int64_t j = 0; j < n; ++j) isa.axpy(s[j], kv + (j * H + h) * (dn + dv) + dn, oh, dv);
      }
    }
  });
}

}  // namespace

void mla_forward(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                 const LayerCache& cache, const AttentionArgs& a, MlaMode mode, Arena& scratch) {
  const int64_t H = c.num_attention_heads, dv = c.v_head_dim;
  const float* q = project_queries(c, w, rope, a, scratch);
  write_cache(c, w, rope, cache, a, scratch);
  float* o = alloc(scratch, a.T * H * dv, "mla o");  // [T, H * dv]
  if (mode == MlaMode::absorbed)
    attend_absorbed(c, w, cache, a, q, o, scratch);
  else
    attend_naive(c, w, cache, a, q, o, scratch);
  linear_forward(w.o_proj, o, a.T, a.out);
}

int64_t mla_scratch_floats(const ModelConfig& c, int64_t T, int64_t S, MlaMode mode, int threads) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), rkv = c.kv_lora_rank;
  int64_t n =
      T * H * dq + T * c.q_lora_rank + T * (rkv + c.qk_rope_head_dim) + T * H * c.v_head_dim;
  n += int64_t(threads) * S;
  n += mode == MlaMode::absorbed ? 2 * T * H * rkv : S * H * (c.qk_nope_head_dim + c.v_head_dim);
  return n + 16 * 8;  // 64-byte rounding of each allocation
}

}  // namespace tern::model
