// The sampling pipeline for one sequence: biased and penalised logits, then greedy or the
// cuts and a draw addressed by (seed, stream, generated-token index) in core/random.h.
#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/random.h"
#include "infer/transforms.h"

namespace tern::infer {
namespace {

// Validation runs before any member is built from the parameters (penalty_last_n sizes the
// history), hence a helper in the initialiser list rather than a check in the body.
SamplingParams validated(SamplingParams p) {
  p.validate();
  return p;
}

}  // namespace

Sampler::Sampler(SamplingParams params, int32_t vocab_size, uint64_t stream)
    : params_(validated(std::move(params))),
      vocab_size_(vocab_size),
      stream_(stream),
      history_(params_.penalty_last_n) {
  if (vocab_size <= 0)
    fail(ErrorKind::internal, "sampler: vocabulary size " + std::to_string(vocab_size));
  for (const auto& [id, bias] : params_.logit_bias)
    if (id >= vocab_size)
      fail(ErrorKind::request, "sampling parameter 'logit_bias': token id " + std::to_string(id) +
                                   " is outside the vocabulary [0, " + std::to_string(vocab_size) +
                                   ")");
  work_.resize(static_cast<size_t>(vocab_size));
}

void Sampler::check_token(int32_t token, const char* what) const {
  if (token < 0 || token >= vocab_size_)
    fail(ErrorKind::request, std::string(what) + " token " + std::to_string(token) +
                                 " is outside the vocabulary [0, " + std::to_string(vocab_size_) +
                                 ")");
}

void Sampler::accept_prompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) check_token(t, "prompt");
  for (int32_t t : tokens) history_.add_prompt(t);
}

void Sampler::accept(int32_t token) {
  check_token(token, "accepted");
  if (constraint_) constraint_->accept(token);
  history_.add_generated(token);
}

void Sampler::constrain(std::shared_ptr<TokenConstraint> c) {
  constraint_ = std::move(c);
  allowed_for_ = UINT64_MAX;
}

void Sampler::prepare(std::span<const float> logits) {
  if (logits.size() != work_.size())
    fail(ErrorKind::internal, "sampler: logits row has " + std::to_string(logits.size()) +
                                  " entries for a vocabulary of " + std::to_string(work_.size()));
  std::copy(logits.begin(), logits.end(), work_.begin());
  apply_logit_bias(work_, params_.logit_bias);
  apply_penalties(work_, history_, params_);
  if (!constraint_) return;
  if (allowed_for_ != draw_index()) {
    constraint_->allowed(allowed_);
    allowed_for_ = draw_index();
    if (allowed_.size() != work_.size())
      fail(ErrorKind::internal, "sampler: the constraint's mask does not cover the vocabulary");
  }
  for (size_t i = 0; i < work_.size(); ++i)
    if (!allowed_[i]) work_[i] = -INFINITY;
}

void Sampler::filter() {
  build_candidates(work_, cands_);
  top_k(cands_, params_.top_k);
  apply_temperature(cands_, params_.temperature);
  softmax(cands_);
  top_p(cands_, params_.top_p);
  min_p(cands_, params_.min_p);
}

int32_t Sampler::sample(std::span<const float> logits) {
  prepare(logits);
  if (params_.temperature == 0.0f) return greedy(work_);
  filter();
  return draw(cands_, rng::uniform_double(params_.seed, stream_, draw_index()));
}

void Sampler::probabilities(std::span<const float> logits, std::span<float> out) {
  if (out.size() != work_.size())
    fail(ErrorKind::internal, "sampler: probabilities output has " + std::to_string(out.size()) +
                                  " entries for a vocabulary of " + std::to_string(work_.size()));
  prepare(logits);
  std::fill(out.begin(), out.end(), 0.0f);
  if (params_.temperature == 0.0f) {
    out[static_cast<size_t>(greedy(work_))] = 1.0f;
    return;
  }
  filter();
  for (const Candidate& x : cands_.items)
    out[static_cast<size_t>(x.id)] = static_cast<float>(x.weight / cands_.total);
}

std::vector<float> Sampler::probabilities(std::span<const float> logits) {
  std::vector<float> out(work_.size());
  probabilities(logits, out);
  return out;
}

}  // namespace tern::infer
