// Multi-head Latent Attention (spec §6) over a batch of sequences and their paged latent cache:
// the absorbed form (attend over the latent directly, the serving path) and the naive form
// (materialise per-head K/V from the latent; a check on the absorbed one). Both write the new
// rows' latent and roped k_pe into the cache and agree to f32 rounding.
#pragma once

#include <cstdint>
#include <span>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/kv_store.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tern::model {

enum class MlaMode { absorbed, naive };

// One attention layer's step over a batch: rows are grouped into sequence runs (batch.h).
struct AttentionStep {
  const float* x = nullptr;  // [N, hidden_size], already input_layernorm'd
  float* out = nullptr;      // [N, hidden_size]
  int64_t N = 0;
  std::span<const int64_t> positions;  // [N]
  std::span<const SeqRun> runs;
  const KvStore* kv = nullptr;
  int64_t layer = 0;  // layer index within kv
};

// Writes the rows' cache entries, then attends each row over its sequence's positions up to
// and including its own.
void mla_forward(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                 const AttentionStep& step, MlaMode mode, Arena& scratch, ThreadPool& pool);

// Floats of scratch mla_forward needs for N rows whose sequences reach at most S positions.
// Only the naive form grows with S.
int64_t mla_scratch_floats(const ModelConfig& c, const KvLayout& kv, int64_t N, int64_t S,
                           MlaMode mode, int threads);

}  // namespace tern::model
