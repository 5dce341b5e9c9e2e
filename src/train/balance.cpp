#include "train/balance.h"

#include <algorithm>

#include "core/error.h"

namespace tern::train {
namespace {

std::vector<model::MoeWeights*> moe_layers(model::ModelWeights& w) {
  std::vector<model::MoeWeights*> out;
  for (model::LayerWeights& L : w.layers)
    if (L.is_moe) out.push_back(&L.moe);
  for (model::MtpWeights& m : w.mtp)
    if (m.block.is_moe) out.push_back(&m.block.moe);
  return out;
}

}  // namespace

BalanceStats balance_stats(const model::ModelConfig& c,
                           const std::vector<std::vector<int64_t>>& counts) {
  BalanceStats s;
  for (const auto& layer : counts) {
    int64_t n = 0;
    for (int64_t x : layer) n += x;
    const double mean = double(n) / double(std::max<int64_t>(1, c.n_routed_experts));
    double worst = 0;
    if (mean > 0)
      for (int64_t x : layer) worst = std::max(worst, (double(x) - mean) / mean);
    s.maxvio.push_back(worst);
    s.maxvio_global = std::max(s.maxvio_global, worst);
  }
  return s;
}

void update_bias(const model::ModelConfig& c, model::ModelWeights& w,
                 const std::vector<std::vector<int64_t>>& counts, double gamma) {
  if (!c.has_correction_bias || gamma == 0) return;
  const auto layers = moe_layers(w);
  TERN_CHECK(layers.size() == counts.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    Tensor& bias = layers[l]->e_score_correction_bias.data;
    if (bias.empty()) continue;  // a layer of another pipeline stage
    float* b = bias.data_as<float>();
    int64_t n = 0;
    for (int64_t x : counts[l]) n += x;
    // c̄ = K·N/E: the counts already hold K assignments per token, so c̄ = Σc / E.
    const double mean = double(n) / double(c.n_routed_experts);
    for (size_t e = 0; e < counts[l].size(); ++e) {
      const double diff = mean - double(counts[l][e]);
      b[e] = float(b[e] + gamma * (diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0));
    }
  }
}

}  // namespace tern::train
