// Speculative decoding with a small draft model (same tokenizer; e.g. an R1-Distill student
// drafting for a larger model): each step the draft model proposes up to k tokens one at a
// time, the main model checks them all in one forward, and the shared rule (speculative_rule.h)
// keeps the agreed prefix — greedy output is plain greedy decoding token for token, sampled
// output keeps the main model's distribution. The draft model has its own pool and state and
// only ever advances over accepted tokens, so a rejected draft costs nothing to undo.
#pragma once

#include <cstdint>

#include "infer/generate.h"

namespace tern::infer {

// The drafter: a loaded model with its own KV pool and forward state (at least 2 rows).
struct DraftModel {
  const model::Model& model;
  KvPool& pool;
  model::ForwardState& state;
};

// As generate(), drafting up to max_draft (>= 1) tokens per step with `draft`. `state` (the
// main model's) must allow max_draft + 1 rows. The draft model's vocabulary may be smaller than
// the main model's (never larger). stats.drafted / stats.accepted count drafted tokens.
GenerateStats generate_draft(const model::Model& m, KvPool& pool, model::ForwardState& state,
                             Sampler& sampler, const DraftModel& draft, const GenerateRequest& req,
                             int64_t max_draft, const TokenCallback& on_token);

}  // namespace tern::infer
