#include "model/moe.h"

#include <algorithm>

#include "kernels/cpu/isa.h"
#include "model/layer_ops.h"
#include "model/router.h"

namespace tern::model {

void moe_forward(const ModelConfig& c, const MoeWeights& w, const float* x, int64_t T, float* out,
                 Arena& scratch, int32_t* routed_idx, ThreadPool* pool) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, d = c.hidden_size;
  auto alloc = [&](int64_t n, const char* what) {
    return static_cast<float*>(scratch.allocate(size_t(n) * 4, what));
  };
  float* logits = alloc(T * E, "router logits");
  float* route_scratch = alloc(3 * E, "router scratch");
  float* weights = alloc(T * K, "router weights");
  int32_t* idx = reinterpret_cast<int32_t*>(alloc(T * K, "router ids"));
  linear_forward(w.gate, x, T, logits, 0, 0, pool);
  const float* bias =
      w.e_score_correction_bias.present() ? w.e_score_correction_bias.ptr() : nullptr;
  for (int64_t t = 0; t < T; ++t)
    route_token(c, logits + t * E, bias, route_scratch, idx + t * K, weights + t * K);
  if (routed_idx) std::copy_n(idx, T * K, routed_idx);

  // Group (token, slot) pairs by expert so each expert's weights are read once.
  int32_t* order = reinterpret_cast<int32_t*>(alloc(T * K, "moe order"));
  int32_t* start = reinterpret_cast<int32_t*>(alloc(E + 1, "moe offsets"));
  std::fill_n(start, E + 1, 0);
  for (int64_t i = 0; i < T * K; ++i) start[idx[i] + 1]++;
  for (int64_t e = 0; e < E; ++e) start[e + 1] += start[e];
  int32_t* fill = reinterpret_cast<int32_t*>(alloc(E, "moe fill"));
  std::fill_n(fill, E, 0);
  for (int64_t i = 0; i < T * K; ++i) order[start[idx[i]] + fill[idx[i]]++] = int32_t(i);

  float* xe = alloc(T * d, "expert inputs");
  float* ye = alloc(T * d, "expert outputs");
  const size_t mark = scratch.used();
  std::fill_n(out, T * d, 0.0f);
  const kernels::IsaKernels& isa = kernels::active_isa();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = start[e + 1] - start[e];
    if (n == 0) continue;
    for (int64_t j = 0; j < n; ++j) std::copy_n(x + (order[start[e] + j] / K) * d, d, xe + j * d);
    mlp_forward(w.experts[size_t(e)], xe, n, ye, scratch, pool);
    for (int64_t j = 0; j < n; ++j) {
      const int32_t pair = order[start[e] + j];
      isa.axpy(weights[pair], ye + j * d, out + (pair / K) * d, d);
    }
    scratch.reset_to(mark);
  }
  if (w.shared_experts.gate_proj.present()) {
    mlp_forward(w.shared_experts, x, T, ye, scratch, pool);
    for (int64_t t = 0; t < T; ++t) isa.axpy(1.0f, ye + t * d, out + t * d, d);
  }
}

int64_t moe_scratch_floats(const ModelConfig& c, int64_t T) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, d = c.hidden_size;
  const int64_t width =
      std::max(c.moe_intermediate_size, c.n_shared_experts * c.moe_intermediate_size);
  return T * E + 3 * E + 3 * T * K + 2 * E + 1 + 2 * T * d + mlp_scratch_floats(T, width) + 16 * 12;
}

}  // namespace tern::model
