// Sampler: one per sequence. Holds the parameters, the token history the penalties need and
// the position of the next draw, and turns a logits row into a token. Not thread-safe (it
// reuses scratch buffers so steady-state sampling does not allocate); sequences do not share.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "infer/candidates.h"
#include "infer/sampling_params.h"
#include "infer/token_constraint.h"
#include "infer/token_history.h"

namespace tern::infer {

class Sampler {
 public:
  // Validates params (Error(request)), including logit_bias ids against vocab_size. stream
  // names this sequence's random numbers (rng::stream_id of e.g. "choice/0"): the i-th
  // generated token draws index i of (params.seed, stream), so output does not depend on
  // batching, thread count, or how many other sequences run.
  Sampler(SamplingParams params, int32_t vocab_size, uint64_t stream);

  // Prompt tokens feed the repetition window only; accept() records a generated token (it
  // counts for presence/frequency too) and advances the draw index.
  void accept_prompt(std::span<const int32_t> tokens);
  void accept(int32_t token);

  // The next token for logits: [vocab_size]. Does not change state: sampling twice without
  // accept() gives the same token. temperature 0 is a greedy argmax (ties: lowest id).
  int32_t sample(std::span<const float> logits);

  // The exact distribution sample() draws from, for speculative-decoding verification.
  // out: [vocab_size], zero outside the kept candidates; one-hot when temperature is 0.
  void probabilities(std::span<const float> logits, std::span<float> out);
  std::vector<float> probabilities(std::span<const float> logits);

  // Restricts every later draw to the tokens `c` allows (before logit_bias, penalties and the
  // cuts, so greedy decoding obeys it too); accept() advances it. nullptr removes it.
  void constrain(std::shared_ptr<TokenConstraint> c);
  const TokenConstraint* constraint() const { return constraint_.get(); }

  const SamplingParams& params() const { return params_; }
  const TokenHistory& history() const { return history_; }
  uint64_t stream() const { return stream_; }
  uint64_t draw_index() const { return history_.generated(); }

 private:
  void check_token(int32_t token, const char* what) const;
  // Copies logits into work_ and applies logit_bias and penalties.
  void prepare(std::span<const float> logits);
  // From work_: top_k -> temperature -> softmax -> top_p -> min_p into cands_.
  void filter();

  SamplingParams params_;
  int32_t vocab_size_;
  uint64_t stream_;
  TokenHistory history_;
  std::vector<float> work_;  // [vocab_size]
  Candidates cands_;
  std::shared_ptr<TokenConstraint> constraint_;
  std::vector<uint8_t> allowed_;       // the constraint's mask for draw index allowed_for_
  uint64_t allowed_for_ = UINT64_MAX;  // sample() may run twice for one draw
};

}  // namespace tern::infer
