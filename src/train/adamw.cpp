#include "train/adamw.h"

#include <cmath>

namespace tern::train {

AdamW::AdamW(const model::ModelConfig& c, model::ModelWeights& params, model::ModelWeights& grads,
             AdamWConfig cfg)
    : cfg_(cfg), m_(model::grad::make_f32_weights(c)), v_(model::grad::make_f32_weights(c)) {
  p_ = model::grad::param_slots(c, params);
  g_ = model::grad::param_slots(c, grads);
  ms_ = model::grad::param_slots(c, m_);
  vs_ = model::grad::param_slots(c, v_);
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
    pool.parallel_for(p_[i].size, 4096, [&](int64_t b, int64_t e, int) {
      for (int64_t k = b; k < e; ++k) {
        const float gk = float(g[k] * clip);
        p[k] *= decay;
        m[k] = float(b1 * m[k] + (1.0 - b1) * gk);
        v[k] = float(b2 * v[k] + (1.0 - b2) * double(gk) * gk);
        const double mh = m[k] / c1, vh = v[k] / c2;
        p[k] = float(p[k] - lr * mh / (std::sqrt(vh) + cfg_.eps));
      }
    });
  }
}

void AdamW::zero_grad() {
  for (size_t i = 0; i < g_.size(); ++i)
    if (!g_[i].alias) std::fill_n(g_[i].data, g_[i].size, 0.0f);
}

}  // namespace tern::train
