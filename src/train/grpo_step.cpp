#include "train/grpo_step.h"

#include <string>

#include "core/error.h"

namespace tern::train {

RolloutBatch::RolloutBatch(const model::ModelConfig& c, int64_t B, int64_t T)
    : B_(B), T_(T), S_(model::grad::window_tokens(c, T)) {
  tokens_.resize(size_t(B * S_));
  docs_.resize(size_t(B * S_));
  row_rollout_.resize(size_t(B * T));
  row_token_.resize(size_t(B * T));
}

void RolloutBatch::pack(const std::vector<Rollout>& rs, int64_t first) {
  std::fill(row_rollout_.begin(), row_rollout_.end(), -1);
  std::fill(row_token_.begin(), row_token_.end(), -1);
  for (int64_t b = 0; b < B_; ++b) {
    int32_t* tok = tokens_.data() + b * S_;
    int32_t* doc = docs_.data() + b * S_;
    const int64_t i = first + b;
    int64_t len = 0;
    if (i < int64_t(rs.size())) {
      const Rollout& r = rs[size_t(i)];
      len = int64_t(r.prompt.size() + r.completion.size());
      if (len > T_ + 1)
        fail(ErrorKind::request, "a rollout of " + std::to_string(len) +
                                     " tokens does not fit the training window of " +
                                     std::to_string(T_ + 1));
      std::copy(r.prompt.begin(), r.prompt.end(), tok);
      std::copy(r.completion.begin(), r.completion.end(), tok + r.prompt.size());
      const int64_t p = int64_t(r.prompt.size());
      for (int64_t j = 0; j < int64_t(r.completion.size()); ++j) {
        row_rollout_[size_t(b * T_ + p - 1 + j)] = int32_t(i);
        row_token_[size_t(b * T_ + p - 1 + j)] = int32_t(j);
      }
    }
    // Padding: token 0, each position its own document, so no row predicts into it.
    for (int64_t j = 0; j < S_; ++j) {
      if (j >= len) tok[j] = 0;
      doc[j] = j < len ? 0 : int32_t(j + 1);
    }
  }
}

void record_logprobs(model::grad::ModelGrad& net, const model::ModelWeights& w,
                     const RolloutBatch& rb, std::vector<Rollout>& rs, LogpSlot slot,
                     ThreadPool& pool) {
  for (int64_t row = 0; row < rb.B() * rb.T(); ++row) {
    const auto [i, j] = rb.at(row);
    if (i < 0) continue;
    Rollout& r = rs[size_t(i)];
    auto& v = slot == LogpSlot::old_policy ? r.old_logp : r.ref_logp;
    v.resize(r.completion.size());
  }
  const model::grad::TargetWeight fn = [&](int64_t row, double logp) {
    const auto [i, j] = rb.at(row);
    if (i >= 0) {
      Rollout& r = rs[size_t(i)];
      (slot == LogpSlot::old_policy ? r.old_logp : r.ref_logp)[size_t(j)] = logp;
    }
    return 0.0f;
  };
  net.evaluate_weighted(w, rb.batch(), fn, pool);
}

GrpoTotals grpo_backward(model::grad::ModelGrad& net, const model::ModelWeights& w,
                         model::ModelWeights& g, const RolloutBatch& rb, std::vector<Rollout>& rs,
                         const GrpoStepOptions& o, ThreadPool& pool) {
  const int64_t rows = rb.B() * rb.T();
  if (o.record_old)
    for (int64_t row = 0; row < rows; ++row)
      if (const auto [i, j] = rb.at(row); i >= 0)
        rs[size_t(i)].old_logp.resize(rs[size_t(i)].completion.size());
  // Per-row results, summed in row order afterwards: the callback runs on several threads.
  std::vector<double> value(size_t(rows), 0.0), kl(size_t(rows), 0.0);
  std::vector<uint8_t> clipped(size_t(rows), 0);
  const model::grad::TargetWeight fn = [&](int64_t row, double logp) -> float {
    const auto [i, j] = rb.at(row);
    if (i < 0) return 0.0f;
    Rollout& r = rs[size_t(i)];
    if (o.record_old) r.old_logp[size_t(j)] = logp;
    const double ref = o.use_ref ? r.ref_logp[size_t(j)] : logp;
    const TokenObjective t = grpo_token(logp, r.old_logp[size_t(j)], ref, r.advantage, o.settings);
    const double wt = grpo_token_weight(o.n_responses, int64_t(r.completion.size()), o.max_tokens,
                                        o.settings.dr_grpo);
    value[size_t(row)] = wt * t.value;
    kl[size_t(row)] = t.kl;
    clipped[size_t(row)] = t.clipped;
    // The head's gradient is weight · ∂CE/∂logits = −weight · ∂log p/∂logits, and the loss is
    // −J, so the weight is ∂J/∂log p.
    return float(wt * t.dvalue_dlogp);
  };
  net.step_weighted(w, g, rb.batch(), fn, {0.0f, o.balance_alpha, 1.0f}, pool);
  GrpoTotals tot;
  for (int64_t row = 0; row < rows; ++row) {
    if (rb.at(row).first < 0) continue;
    tot.objective += value[size_t(row)];
    tot.kl_sum += kl[size_t(row)];
    tot.clipped += clipped[size_t(row)];
    ++tot.tokens;
  }
  return tot;
}

}  // namespace tern::train
