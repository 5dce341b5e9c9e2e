// Grouped-query attention for the dense distilled models (Qwen2 with q/k/v biases, Llama-3),
// spec §11. Caches K (roped) and V per KV head.
#pragma once

#include "core/arena.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/mla.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tern::model {

void gqa_forward(const ModelConfig& c, const GqaWeights& w, const RopeTable& rope,
                 const LayerCache& cache, const AttentionArgs& args, Arena& scratch);

int64_t gqa_scratch_floats(const ModelConfig& c, int64_t T, int64_t S, int threads);

}  // namespace tern::model
