// The LM head with cross-entropy, forward and backward fused: logits are formed a chunk of
// rows at a time, turned into the loss and their own gradient at once, and pushed back through
// the head, so the [N, vocab] logits never exist whole.
#pragma once

#include <cstdint>
#include <functional>

#include "core/thread_pool.h"
#include "model/grad/saved.h"
#include "model/weights.h"

namespace tern::model::grad {

// A weight per target computed from its current log-probability, for objectives whose
// gradient with respect to log p(target) depends on p itself (policy gradients with clipped
// ratios and a KL term, train/grpo_objective.h): row n's CE gradient is scaled by
// fn(n, log p(target[n])). Called once per row with a target, from several threads at once
// (distinct rows), even when no gradient is taken, so it can record the log-probabilities.
using TargetWeight = std::function<float(int64_t row, double logprob)>;

// A loss of the row's own in place of cross-entropy (soft targets: distillation from a
// teacher's distribution): given row n's logits [V], returns its loss and overwrites the logits
// with the objective's gradient with respect to them (weights included). Called for every row
// with target >= 0, from several threads at once (distinct rows).
using RowLoss = std::function<double(int64_t row, float* logits, int64_t V)>;

// Σ over rows with target >= 0 of CE(head(hn[n]), target[n]) (f64 sum, rows in order).
// The objective's weight on that sum is `weight` (or per_target's, when given): dhn[N, d] (+)=
// weight · ∂/∂hn and dhead += weight · ∂/∂W, unless dhead is null (loss only). `scratch` holds a
// chunk of logits (not needed where the head trains in bf16). With row_loss, each row's loss
// and gradient are its instead.
double lm_head_ce(const Linear& head, Linear* dhead, const float* hn, const int32_t* target,
                  int64_t N, float weight, float* dhn, bool accumulate, Buffer& scratch,
                  ThreadPool& pool, const TargetWeight* per_target = nullptr,
                  const RowLoss* row_loss = nullptr);

}  // namespace tern::model::grad
