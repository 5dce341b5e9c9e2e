// Prompt-lookup speculative decoding for any model (no draft model needed): the tokens that
// followed the most recent earlier occurrence of the context's last n-gram are proposed as
// drafts, and the main model checks all of them in one forward. Pays off where output repeats
// its input (code edits, quoting, summaries). Greedy output is plain greedy decoding token for
// token; sampled output keeps the model's distribution (a deterministic draft d is accepted
// with probability p(d), else the token is drawn from p without d).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "infer/generate.h"

namespace tern::infer {

// Up to max_draft tokens that followed the latest earlier match of the longest suffix (3, 2,
// then 1 tokens) of `history`; empty when nothing matches.
std::vector<int32_t> lookup_draft(std::span<const int32_t> history, int64_t max_draft);

// As generate(), drafting up to max_draft (>= 1) tokens per step by prompt lookup. `state` must
// allow max_draft + 1 rows. stats.drafted / stats.accepted count drafted tokens.
GenerateStats generate_lookup(const model::Model& m, KvPool& pool, model::ForwardState& state,
                              Sampler& sampler, const GenerateRequest& req, int64_t max_draft,
                              const TokenCallback& on_token);

}  // namespace tern::infer
