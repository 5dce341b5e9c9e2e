// DeepSeekMoE routing for one token (spec §7.2, §7.3): softmax or sigmoid scores, optional
// selection bias, group-limited selection (max or top-2-sum group scores), top-K, then
// renormalisation and routed_scaling_factor by the variant's rules.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace tern::model {

// logits: [E] router outputs; bias: [E] e_score_correction_bias or null; scratch: 3*E floats.
// Writes idx[K] (expert ids, by descending selection score) and weight[K].
void route_token(const ModelConfig& c, const float* logits, const float* bias, float* scratch,
                 int32_t* idx, float* weight);

}  // namespace tern::model
