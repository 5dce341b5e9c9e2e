// Grouped-query attention for the dense distilled models (Qwen2 with q/k/v biases, Llama-3),
// spec §11, over a batch of sequences and their paged cache of roped K and V per KV head.
#pragma once

#include "core/arena.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/mla.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tern::model {

// Writes the rows' K and V into the cache, then attends each row over its sequence's positions
// up to and including its own.
void gqa_forward(const ModelConfig& c, const GqaWeights& w, const RopeTable& rope,
                 const AttentionStep& step, Arena& scratch, ThreadPool& pool);

int64_t gqa_scratch_floats(const ModelConfig& c, const KvLayout& kv, int64_t N, int threads);

}  // namespace tern::model
