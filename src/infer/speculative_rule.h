// The accept/reject rule of speculative decoding, shared by every drafter (MTP module, prompt
// lookup, a draft model). Greedy: a draft is kept when it is the main model's own choice.
// Sampled (Leviathan et al. 2023): a draft d drawn from the drafter's distribution q is kept
// with probability min(1, p(d) / q(d)); otherwise the token is drawn from max(0, p - q)
// renormalised. The emitted token's distribution is then exactly p, the main sampler's. A
// deterministic draft is the case q = one-hot(d).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "infer/sampler.h"

namespace tern::infer {

class SpeculativeRule {
 public:
  // `sampler` is the main model's; its params decide greedy vs sampled.
  SpeculativeRule(Sampler& sampler, int64_t vocab_size);

  bool greedy() const { return sampler_.params().temperature == 0; }

  // A draft for `position` from drafter logits `row`, under the main sampler's transforms:
  // its choice when greedy, else a draw from its distribution, which is kept in q (resized to
  // the vocabulary) for verify(). Drafter rows may be shorter than the vocabulary (a draft
  // model with fewer rows); the missing ids get probability 0.
  int32_t draft(std::span<const float> row, int64_t position, std::vector<float>& q);

  // The token at `position` given the main model's logits `row` and the draft d: d when kept
  // (*accepted), else its replacement. q: the distribution d was drawn from (draft()), empty
  // for a deterministic draft. The caller accept()s the returned token into the sampler.
  int32_t verify(std::span<const float> row, int32_t d, std::span<const float> q, int64_t position,
                 bool* accepted);

 private:
  Sampler& sampler_;
  int64_t V_;
  std::vector<float> p_, residual_, padded_;
};

// One verification step over k drafts (the prompt-lookup and draft-model loops): row(i) is the
// main model's logits row for the token at position `first + i` (row(k) follows the last
// draft), q(i) the distribution draft i was drawn from (empty: deterministic). Accepted drafts
// go to `emit`, in order, until it returns false; the token after them (a replacement, or a
// fresh draw from row(k) when every draft was kept) is returned in `next`, not emitted. Every
// returned token is accept()ed into the sampler.
struct DraftVerdict {
  int64_t accepted = 0;  // drafts kept (and emitted)
  int32_t next = -1;     // the token after them; -1 when emit stopped generation
};
DraftVerdict verify_drafts(SpeculativeRule& rule, Sampler& sampler, std::span<const int32_t> drafts,
                           const std::function<std::span<const float>(int64_t)>& row,
                           const std::function<std::span<const float>(int64_t)>& q, int64_t first,
                           const std::function<bool(int32_t)>& emit);

}  // namespace tern::infer
