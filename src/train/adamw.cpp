#include "train/adamw.h"

#include <cmath>

#include "core/error.h"

namespace tern::train {

AdamW::AdamW(const model::ModelConfig& c, model::ModelWeights& params, model::ModelWeights& grads,
             AdamWConfig cfg)
    : cfg_(cfg), m_(model::grad::make_f32_weights(c)), v_(model::grad::make_f32_weights(c)) {
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
    for (int64_t k = 0; k < g_[i].size; ++k) ss += double(g[k]) * g[k];
  }
  return std::sqrt(ss);
}

void AdamW::step(double lr, double norm, ThreadPool& pool) {
  ++t_;
  const double clip = cfg_.clip > 0 && norm > cfg_.clip ? cfg_.clip / (norm + 1e-6) : 1.0;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double c1 = 1.0 - std::pow(b1, double(t_)), c2 = 1.0 - std::pow(b2, double(t_));
  for (size_t i = 0; i < p_.size(); ++i) {
    if (!p_[i].trainable) continue;
    float* p = p_[i].data;
    const float* g = g_[i].data;
    float* m = ms_[i].data;
    float* v = vs_[i].data;
    const float decay = p_[i].decay ? float(1.0 - lr * cfg_.weight_decay) : 1.0f;
    // f32 arithmetic throughout so the loop vectorises (the moments are f32 anyway); the bias
    // corrections fold into two constants: m̂ = m/c1, sqrt(v̂) = sqrt(v)/sqrt(c2).
    const float fclip = float(clip), fb1 = float(b1), fb2 = float(b2);
    const float a1 = float(1.0 - b1), a2 = float(1.0 - b2);
    const float step = float(lr / c1), inv_sqrt_c2 = float(1.0 / std::sqrt(c2));
    const float eps = float(cfg_.eps);
    pool.parallel_for(p_[i].size, 4096, [&](int64_t b, int64_t e, int) {
      for (int64_t k = b; k < e; ++k) {
        const float gk = g[k] * fclip;
        const float mk = fb1 * m[k] + a1 * gk, vk = fb2 * v[k] + a2 * gk * gk;
        m[k] = mk;
        v[k] = vk;
        p[k] = p[k] * decay - step * mk / (std::sqrt(vk) * inv_sqrt_c2 + eps);
      }
    });
  }
}

void AdamW::zero_grad() {
  for (size_t i = 0; i < g_.size(); ++i)
    if (!g_[i].alias) std::fill_n(g_[i].data, g_[i].size, 0.0f);
}

}  // namespace tern::train
