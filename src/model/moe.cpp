#include "model/moe.h"

#include <algorithm>

#include "kernels/cpu/isa.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/layer_ops.h"
#include "model/router.h"

namespace tern::model {
namespace {

constexpr int64_t kMaxExpertsPerToken = 32;  // experts_one_token's stack arrays

bool has_bias(const MlpWeights& m) {
  return !m.gate_proj.bias.empty() || !m.up_proj.bias.empty() || !m.down_proj.bias.empty();
}

// One token's experts (the K routed ones, weighted, and the shared ones): every gate and up
// projection in one parallel loop, then every down projection in another, instead of three
// small loops per expert, each too short to keep the threads busy. Returns false (having done
// nothing) where an expert has a bias.
bool experts_one_token(const ModelConfig& c, const MoeWeights& w, const float* x,
                       const int32_t* idx, const float* weights, int64_t K, float* out,
                       Arena& scratch, ThreadPool* pool, const ExpertParallel& ep) {
  if (K > kMaxExpertsPerToken) return false;
  const MlpWeights* m[kMaxExpertsPerToken + 1];
  float scale[kMaxExpertsPerToken + 1];
  int64_t n = 0;
  for (int64_t k = 0; k < K; ++k)
    if (ep.holds(idx[k], c.n_routed_experts))
      m[n] = &w.experts[size_t(idx[k])], scale[n++] = weights[k];
  if (w.shared_experts.gate_proj.present() && ep.runs_shared())
    m[n] = &w.shared_experts, scale[n++] = 1.0f;
  const int64_t d = c.hidden_size;
  if (n == 0) {  // another rank holds every expert this token chose
    std::fill_n(out, d, 0.0f);
    return true;
  }
  for (int64_t e = 0; e < n; ++e)
    if (has_bias(*m[e])) return false;
  kernels::MatmulParams gu[2 * (kMaxExpertsPerToken + 1)], down[kMaxExpertsPerToken + 1];
  float* h = static_cast<float*>(scratch.allocate(size_t(n * d) * 4, "expert outputs"));
  for (int64_t e = 0; e < n; ++e) {
    const kernels::WeightView &gv = m[e]->gate_proj.view, &uv = m[e]->up_proj.view;
    float* g = static_cast<float*>(scratch.allocate(size_t(2 * gv.rows) * 4, "expert gate/up"));
    gu[2 * e] = {x, gv.cols, g, gv.rows, 1, gv};
    gu[2 * e + 1] = {x, uv.cols, g + gv.rows, uv.rows, 1, uv};
    down[e] = {g, gv.rows, h + e * d, d, 1, m[e]->down_proj.view};
  }
  kernels::matmul_group(gu, 2 * n, pool);
  for (int64_t e = 0; e < n; ++e) {
    float* g = gu[2 * e].y;
    kernels::swiglu(g, gu[2 * e + 1].y, g, gu[2 * e].w.rows);
  }
  kernels::matmul_group(down, n, pool);
  const kernels::IsaKernels& isa = kernels::active_isa();
  std::fill_n(out, d, 0.0f);
  for (int64_t e = 0; e < n; ++e) isa.axpy(scale[e], h + e * d, out, d);
  return true;
}

// Tokens up to which a step's experts run grouped (batched decode, MTP verification, short
// prompts): every expert's gate and up projections in one parallel loop, then every down
// projection in another, where one loop per matrix forked and joined the pool some 150 times a
// layer for a few microseconds of work each. Above it each expert's share of the batch keeps the
// threads busy on its own, and grouping would hold every expert's activations at once.
constexpr int64_t kGroupedMaxTokens = 16;

// The grouped form of moe_forward_local's expert loop (same products, same order of the sums
// into out). Returns false (having done nothing) where an expert has a bias.
bool experts_grouped(const ModelConfig& c, const MoeWeights& w, const float* x, int64_t T,
                     const int32_t* order, const int32_t* start, const float* weights, float* out,
                     Arena& scratch, ThreadPool* pool, const ExpertParallel& ep) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, d = c.hidden_size;
  const bool shared = w.shared_experts.gate_proj.present() && ep.runs_shared();
  int64_t pairs = 0, gate_floats = 0;
  for (int64_t e = ep.begin(E); e < ep.end(E); ++e) {
    const int64_t n = start[e + 1] - start[e];
    if (n == 0) continue;
    if (has_bias(w.experts[size_t(e)])) return false;
    pairs += n;
    gate_floats += n * w.experts[size_t(e)].gate_proj.view.rows;
  }
  if (shared) {
    if (has_bias(w.shared_experts)) return false;
    gate_floats += T * w.shared_experts.gate_proj.view.rows;
  }
  auto alloc = [&](int64_t n, const char* what) {
    return static_cast<float*>(scratch.allocate(size_t(std::max<int64_t>(n, 1)) * 4, what));
  };
  float* xe = alloc(pairs * d, "grouped expert inputs");
  float* ye = alloc((pairs + (shared ? T : 0)) * d, "grouped expert outputs");
  float* g = alloc(gate_floats, "grouped expert gates");
  float* u = alloc(gate_floats, "grouped expert ups");
  thread_local std::vector<kernels::MatmulParams> gu, down;
  gu.clear();
  down.clear();
  int64_t row = 0, goff = 0;
  const auto add = [&](const MlpWeights& m, const float* in, int64_t n, float* y) {
    const kernels::WeightView &gv = m.gate_proj.view, &uv = m.up_proj.view;
    gu.push_back({in, gv.cols, g + goff, gv.rows, n, gv});
    gu.push_back({in, uv.cols, u + goff, uv.rows, n, uv});
    down.push_back({g + goff, gv.rows, y, d, n, m.down_proj.view});
    goff += n * gv.rows;
  };
  for (int64_t e = ep.begin(E); e < ep.end(E); ++e) {
    const int64_t n = start[e + 1] - start[e];
    if (n == 0) continue;
    for (int64_t j = 0; j < n; ++j)
      std::copy_n(x + (order[start[e] + j] / K) * d, d, xe + (row + j) * d);
    add(w.experts[size_t(e)], xe + row * d, n, ye + row * d);
    row += n;
  }
  if (shared) add(w.shared_experts, x, T, ye + pairs * d);
  kernels::matmul_group(gu.data(), int64_t(gu.size()), pool);
  kernels::swiglu(g, u, g, gate_floats);
  kernels::matmul_group(down.data(), int64_t(down.size()), pool);
  const kernels::IsaKernels& isa = kernels::active_isa();
  std::fill_n(out, T * d, 0.0f);
  row = 0;
  for (int64_t e = ep.begin(E); e < ep.end(E); ++e)
    for (int64_t j = 0; j < start[e + 1] - start[e]; ++j, ++row) {
      const int32_t pair = order[start[e] + j];
      isa.axpy(weights[pair], ye + row * d, out + (pair / K) * d, d);
    }
  if (shared)
    for (int64_t t = 0; t < T; ++t) isa.axpy(1.0f, ye + (pairs + t) * d, out + t * d, d);
  return true;
}

// The experts `ep` places on this rank (all of them alone), weighted, into out.
void moe_forward_local(const ModelConfig& c, const MoeWeights& w, const float* x, int64_t T,
                       float* out, Arena& scratch, int32_t* routed_idx, ThreadPool* pool,
                       const ExpertParallel& ep) {
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

  if (T == 1 && experts_one_token(c, w, x, idx, weights, K, out, scratch, pool, ep)) return;

  // Group (token, slot) pairs by expert so each expert's weights are read once.
  int32_t* order = reinterpret_cast<int32_t*>(alloc(T * K, "moe order"));
  int32_t* start = reinterpret_cast<int32_t*>(alloc(E + 1, "moe offsets"));
  std::fill_n(start, E + 1, 0);
  for (int64_t i = 0; i < T * K; ++i) start[idx[i] + 1]++;
  for (int64_t e = 0; e < E; ++e) start[e + 1] += start[e];
  int32_t* fill = reinterpret_cast<int32_t*>(alloc(E, "moe fill"));
  std::fill_n(fill, E, 0);
  for (int64_t i = 0; i < T * K; ++i) order[start[idx[i]] + fill[idx[i]]++] = int32_t(i);

  if (T <= kGroupedMaxTokens) {
    const size_t before = scratch.used();
    if (experts_grouped(c, w, x, T, order, start, weights, out, scratch, pool, ep)) return;
    scratch.reset_to(before);
  }

  float* xe = alloc(T * d, "expert inputs");
  float* ye = alloc(T * d, "expert outputs");
  const size_t mark = scratch.used();
  std::fill_n(out, T * d, 0.0f);
  const kernels::IsaKernels& isa = kernels::active_isa();
  for (int64_t e = ep.begin(E); e < ep.end(E); ++e) {
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
  if (w.shared_experts.gate_proj.present() && ep.runs_shared()) {
    mlp_forward(w.shared_experts, x, T, ye, scratch, pool);
    for (int64_t t = 0; t < T; ++t) isa.axpy(1.0f, ye + t * d, out + t * d, d);
  }
}

}  // namespace

void moe_forward(const ModelConfig& c, const MoeWeights& w, const float* x, int64_t T, float* out,
                 Arena& scratch, int32_t* routed_idx, ThreadPool* pool, const ExpertParallel* ep) {
  const ExpertParallel alone;
  const ExpertParallel& place = ep ? *ep : alone;
  moe_forward_local(c, w, x, T, out, scratch, routed_idx, pool, place);
  // Each rank's partial output (its experts, rank 0's shared ones) summed over the ranks.
  if (place.active()) place.comm->all_reduce_sum(out, T * c.hidden_size)->wait();
}

int64_t moe_scratch_floats(const ModelConfig& c, int64_t T) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, d = c.hidden_size;
  const int64_t width =
      std::max(c.moe_intermediate_size, c.n_shared_experts * c.moe_intermediate_size);
  // experts_one_token (for a one-token step of any state): outputs, then gate and up per expert
  // (shared ones included).
  const int64_t one_token =
      (K + 1) * d +
      2 * (K * c.moe_intermediate_size + c.n_shared_experts * c.moe_intermediate_size) +
      16 * (K + 2);
  // experts_grouped (up to kGroupedMaxTokens): every (token, expert) pair's input and output,
  // the shared experts' outputs, and the gate and up rows of both.
  const int64_t shared_width = c.n_shared_experts * c.moe_intermediate_size;
  const int64_t grouped =
      T <= kGroupedMaxTokens
          ? (2 * T * K + T) * d + 2 * (T * K * c.moe_intermediate_size + T * shared_width) + 16 * 4
          : 0;
  return T * E + 3 * E + 3 * T * K + 2 * E + 1 + 2 * T * d +
         std::max(mlp_scratch_floats(T, width), grouped) + one_token + 16 * 12;
}

}  // namespace tern::model
