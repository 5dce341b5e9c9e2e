#include "train/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/reduce.h"

namespace tern::train {
namespace {

// Σ g² of one slot over the global pool: tens of megabytes of gradients read by one thread
// would leave the others idle for a few milliseconds of every step. Fixed chunks summed in
// order: the same bits at any thread count.
double slot_sum_squares(const float* g, int64_t n) {
  constexpr int64_t kChunk = int64_t(1) << 15;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) return kernels::sum_squares_f64(g, n);
  thread_local std::vector<double> partial;  // kept: a step allocates nothing
  if (partial.size() < size_t(chunks)) partial.resize(size_t(chunks));
  double* const part = partial.data();  // the workers write the caller's, not their own
  ThreadPool::global().parallel_for(chunks, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t c = b; c < e; ++c)
      part[c] = kernels::sum_squares_f64(g + c * kChunk, std::min(kChunk, n - c * kChunk));
  });
  double ss = 0;
  for (int64_t c = 0; c < chunks; ++c) ss += part[c];
  return ss;
}

}  // namespace

AdamW::AdamW(const model::ModelConfig& c, model::ModelWeights& params, model::ModelWeights& grads,
             AdamWConfig cfg, const model::ExpertParallel* ep, const model::grad::HeldSlots& held)
    : cfg_(cfg),
      m_(model::grad::make_f32_weights(c, ep, held)),
      v_(model::grad::make_f32_weights(c, ep, held)) {
  p_ = model::grad::param_slots(c, params);
  g_ = model::grad::param_slots(c, grads);
  ms_ = model::grad::param_slots(c, m_);
  vs_ = model::grad::param_slots(c, v_);
}

AdamW::AdamW(std::vector<model::grad::ParamSlot> params, std::vector<model::grad::ParamSlot> grads,
             std::vector<model::grad::ParamSlot> m, std::vector<model::grad::ParamSlot> v,
             AdamWConfig cfg)
    : cfg_(cfg), p_(std::move(params)), g_(std::move(grads)), ms_(std::move(m)), vs_(std::move(v)) {
  TERN_CHECK(g_.size() == p_.size() && ms_.size() == p_.size() && vs_.size() == p_.size());
  for (size_t i = 0; i < p_.size(); ++i)
    TERN_CHECK(g_[i].size == p_[i].size && ms_[i].size == p_[i].size && vs_[i].size == p_[i].size);
}

double AdamW::grad_norm() const {
  double ss = 0;
  for (size_t i = 0; i < g_.size(); ++i) {
    if (!p_[i].trainable) continue;
    const float* g = g_[i].data;
    ss += slot_sum_squares(g, g_[i].size);
  }
  return std::sqrt(ss);
}

AdamWUpdate AdamWUpdate::make(const AdamWConfig& cfg, double lr, double norm, int64_t t) {
  const double clip = cfg.clip > 0 && norm > cfg.clip ? cfg.clip / (norm + 1e-6) : 1.0;
  const double b1 = cfg.beta1, b2 = cfg.beta2;
  const double c1 = 1.0 - std::pow(b1, double(t)), c2 = 1.0 - std::pow(b2, double(t));
  // f32 arithmetic throughout so the loop vectorises (the moments are f32 anyway); the bias
  // corrections fold into two constants: m̂ = m/c1, sqrt(v̂) = sqrt(v)/sqrt(c2).
  return {float(clip),
          float(b1),
          float(b2),
          float(1.0 - b1),
          float(1.0 - b2),
          float(lr / c1),
          float(1.0 / std::sqrt(c2)),
          float(cfg.eps),
          float(1.0 - lr * cfg.weight_decay)};
}

void adamw_update(const AdamWUpdate& u, bool decay, float* p, const float* g, float* m, float* v,
                  int64_t n) {
  const float fclip = u.clip, fb1 = u.b1, fb2 = u.b2, a1 = u.a1, a2 = u.a2, step = u.step;
  const float inv_sqrt_c2 = u.inv_sqrt_c2, eps = u.eps, d = decay ? u.decay_factor : 1.0f;
  for (int64_t k = 0; k < n; ++k) {
    const float gk = g[k] * fclip;
    const float mk = fb1 * m[k] + a1 * gk, vk = fb2 * v[k] + a2 * gk * gk;
    m[k] = mk;
    v[k] = vk;
    p[k] = p[k] * d - step * mk / (std::sqrt(vk) * inv_sqrt_c2 + eps);
  }
}

double AdamW::sum_squares(bool routed_experts) const {
  double ss = 0;
  for (size_t i = 0; i < g_.size(); ++i) {
    if (!p_[i].trainable || model::grad::routed_expert_slot(p_[i].name) != routed_experts) continue;
    const float* g = g_[i].data;
    ss += slot_sum_squares(g, g_[i].size);
  }
  return ss;
}

double AdamW::sum_squares(const std::function<bool(const std::string& name)>& counted) const {
  double ss = 0;
  for (size_t i = 0; i < g_.size(); ++i) {
    if (!p_[i].trainable || !counted(p_[i].name)) continue;
    const float* g = g_[i].data;
    ss += slot_sum_squares(g, g_[i].size);
  }
  return ss;
}

void AdamW::step(double lr, double norm, ThreadPool& pool, bool zero_grads) {
  ++t_;
  const AdamWUpdate u = AdamWUpdate::make(cfg_, lr, norm, t_);
  for (size_t i = 0; i < p_.size(); ++i) {
    float* g = g_[i].data;
    if (!p_[i].trainable) {  // an alias's storage is zeroed through the slot it aliases
      if (zero_grads && !g_[i].alias) zero_slot(i, pool);
      continue;
    }
    float* p = p_[i].data;
    float* m = ms_[i].data;
    float* v = vs_[i].data;
    const bool decay = p_[i].decay;
    pool.parallel_for(p_[i].size, 4096, [&](int64_t b, int64_t e, int) {
      adamw_update(u, decay, p + b, g + b, m + b, v + b, e - b);
      if (zero_grads) std::fill(g + b, g + e, 0.0f);
    });
  }
}

void AdamW::zero_slot(size_t i, ThreadPool& pool) {
  float* g = g_[i].data;
  pool.parallel_for(g_[i].size, 1 << 14,
                    [&](int64_t b, int64_t e, int) { std::fill(g + b, g + e, 0.0f); });
}

void AdamW::zero_grad() {
  // Tens of megabytes: one thread alone would take milliseconds of every step.
  ThreadPool& pool = ThreadPool::global();
  for (size_t i = 0; i < g_.size(); ++i)
    if (!g_[i].alias) zero_slot(i, pool);
}

}  // namespace tern::train
