#include "model/gqa.h"

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/ops.h"
#include "model/layer_ops.h"

namespace tern::model {

void gqa_forward(const ModelConfig& c, const GqaWeights& w, const RopeTable& rope,
                 const LayerCache& cache, const AttentionArgs& a, Arena& scratch) {
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t kvw = Hkv * hd, S = a.pos0 + a.T, group = H / Hkv;
  float* q = static_cast<float*>(scratch.allocate(size_t(a.T * H * hd) * 4, "gqa q"));
  float* o = static_cast<float*>(scratch.allocate(size_t(a.T * H * hd) * 4, "gqa o"));
  ThreadPool& pool = ThreadPool::global();
  float* scores = static_cast<float*>(scratch.allocate(size_t(pool.size() * S) * 4, "gqa scores"));
  linear_forward(w.q_proj, a.x, a.T, q);
  // K and V go straight into the cache rows of the new positions.
  linear_forward(w.k_proj, a.x, a.T, cache.a + a.pos0 * kvw);
  linear_forward(w.v_proj, a.x, a.T, cache.b + a.pos0 * kvw);
  float cs[256], sn[256];
  for (int64_t t = 0; t < a.T; ++t) {
    rope.angles(a.pos0 + t, cs, sn);
    for (int64_t h = 0; h < H; ++h)
      kernels::rope_rotate(q + (t * H + h) * hd, hd, cs, sn, rope.interleaved());
    for (int64_t h = 0; h < Hkv; ++h)
      kernels::rope_rotate(cache.a + (a.pos0 + t) * kvw + h * hd, hd, cs, sn, rope.interleaved());
  }
  const float scale = float(c.softmax_scale());
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(H, 1, [&](int64_t hb, int64_t he, int thread) {
    float* s = scores + int64_t(thread) * S;
    for (int64_t h = hb; h < he; ++h) {
      const int64_t kvh = h / group;
      for (int64_t t = 0; t < a.T; ++t) {
        const int64_t n = a.pos0 + t + 1;
        const float* qh = q + (t * H + h) * hd;
        for (int64_t j = 0; j < n; ++j)
          s[j] = scale * isa.dot(qh, cache.a + j * kvw + kvh * hd, hd);
        kernels::softmax(s, n);
        float* oh = o + (t * H + h) * hd;
        std::fill_n(oh, hd, 0.0f);
        for (int64_t j = 0; j < n; ++j) isa.axpy(s[j], cache.b + j * kvw + kvh * hd, oh, hd);
      }
    }
  });
  linear_forward(w.o_proj, o, a.T, a.out);
}

int64_t gqa_scratch_floats(const ModelConfig& c, int64_t T, int64_t S, int threads) {
  return 2 * T * c.num_attention_heads * c.head_dim + int64_t(threads) * S + 16 * 3;
}

}  // namespace tern::model
