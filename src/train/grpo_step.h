// GRPO's training side over a step's rollouts: each response packed after its prompt into a
// training window, the old policy's and the reference's log-probabilities of the response
// tokens recorded by the training forward, and the forward and backward of −J
// (train/grpo_objective.h) through ModelGrad's per-target weights — the objective's derivative
// with respect to each token's log-probability, computed from the current one inside the fused
// LM head, so no [tokens, vocab] tensor is kept.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/model_grad.h"
#include "model/weights.h"
#include "train/grpo_objective.h"

namespace tern::train {

struct Rollout {
  int64_t problem = 0;                      // the step's problem it answers (its group)
  std::vector<int32_t> prompt, completion;  // completion: with the end token when it stopped
  double reward = 0, advantage = 0;
  bool correct = false, formatted = false;
  std::vector<double> old_logp, ref_logp;  // per completion token
};

// B training windows of T inputs (S = window_tokens(c, T) tokens) holding rollouts
// [first, first + B): prompt, completion, then padding that no row predicts across.
class RolloutBatch {
 public:
  RolloutBatch(const model::ModelConfig& c, int64_t B, int64_t T);
  // Fails (request) for a rollout longer than T + 1 tokens.
  void pack(const std::vector<Rollout>& rs, int64_t first);
  model::grad::TrainBatch batch() const { return {B_, T_, tokens_.data(), docs_.data()}; }
  // The response token row n predicts: rollout index and its position in the completion, or
  // {-1, -1} for prompt and padding rows.
  std::pair<int64_t, int64_t> at(int64_t row) const {
    return {row_rollout_[size_t(row)], row_token_[size_t(row)]};
  }
  int64_t B() const { return B_; }
  int64_t T() const { return T_; }

 private:
  int64_t B_, T_, S_;
  std::vector<int32_t> tokens_, docs_, row_rollout_, row_token_;
};

enum class LogpSlot { old_policy, reference };
// Forward only over the packed rollouts: each response token's log-probability under w into
// old_logp or ref_logp (sized here).
void record_logprobs(model::grad::ModelGrad& net, const model::ModelWeights& w,
                     const RolloutBatch& rb, std::vector<Rollout>& rs, LogpSlot slot,
                     ThreadPool& pool);

struct GrpoTotals {
  double objective = 0;  // J's share of these tokens (weighted as in the objective)
  double kl_sum = 0;     // Σ D_KL over tokens
  int64_t tokens = 0, clipped = 0;
  void add(const GrpoTotals& o) {
    objective += o.objective, kl_sum += o.kl_sum, tokens += o.tokens, clipped += o.clipped;
  }
};

struct GrpoStepOptions {
  GrpoSettings settings;
  int64_t n_responses = 1;  // responses in the whole step (J's 1/G averaged over groups)
  int64_t max_tokens = 1;   // Dr. GRPO's constant length
  bool record_old = false;  // first pass: the old policy is this forward's (ratio 1)
  bool use_ref = true;      // false: no reference (β = 0), D_KL = 0
  float balance_alpha = 0;
};

// Forward and backward of −J over the packed rollouts: gradients accumulate into g (not
// scaled by anything else). Advantages and, unless record_old, old_logp must be set.
GrpoTotals grpo_backward(model::grad::ModelGrad& net, const model::ModelWeights& w,
                         model::ModelWeights& g, const RolloutBatch& rb, std::vector<Rollout>& rs,
                         const GrpoStepOptions& o, ThreadPool& pool);

}  // namespace tern::train
