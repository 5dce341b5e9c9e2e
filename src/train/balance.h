// Auxiliary-loss-free load balancing (spec §9.1): after each optimizer step every MoE layer's
// e_score_correction_bias moves by ±γ towards balance, from the step's routing counts; and
// MaxVio, the measure of how far from balance a layer is.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace tern::train {

struct BalanceStats {
  std::vector<double> maxvio;  // per MoE layer (main layers, then MTP blocks)
  double maxvio_global = 0;    // the largest of them
};

// MaxVio = max_i (c_i − c̄)/c̄ with c̄ = K·N/E, per layer of counts.
BalanceStats balance_stats(const model::ModelConfig& c,
                           const std::vector<std::vector<int64_t>>& counts);

// b_i += γ·sign(c̄ − c_i) for each MoE layer (same order as counts); no-op for configs without
// a correction bias (V2) or γ = 0.
void update_bias(const model::ModelConfig& c, model::ModelWeights& w,
                 const std::vector<std::vector<int64_t>>& counts, double gamma);

}  // namespace tern::train
