// DeepSeekMoE layer (spec §7): route every token, run each selected expert once over the
// tokens routed to it (gathered contiguously), scatter-add the weighted outputs, add the
// shared experts. Also records which experts each token used (for tests and load statistics).
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/weights.h"

namespace tern::model {

// x: [T, d] (post_attention_layernorm'd); out: [T, d]. routed_idx (optional): [T, K] expert ids.
// ep (optional, active): this rank runs only the experts it holds (and rank 0 the shared ones),
// then the partial outputs are summed over ep->comm's ranks — a collective every rank must
// make with the same T.
void moe_forward(const ModelConfig& c, const MoeWeights& w, const float* x, int64_t T, float* out,
                 Arena& scratch, int32_t* routed_idx = nullptr, ThreadPool* pool = nullptr,
                 const ExpertParallel* ep = nullptr);

int64_t moe_scratch_floats(const ModelConfig& c, int64_t T);

}  // namespace tern::model
