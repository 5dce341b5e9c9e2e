// Generation with the model's own multi-token-prediction module as the drafter (spec §8.3):
// every step runs the main model on the last accepted token and one drafted token together,
// accepts the draft when the main model agrees — greedy: the same argmax, so the output is
// token for token plain greedy decoding; sampled: the standard speculative-sampling rule, so
// the output keeps the main model's distribution — and drafts the next token with the MTP
// module from the main model's hidden state. The MTP module keeps its own one-layer cache.
#pragma once

#include "infer/generate.h"

namespace tern::infer {

// As generate(), for a model loaded with its MTP module. `mtp_pool` is a one-layer pool
// (KvPool with n_layers = 1) of the same block size. Prompt blocks are not reused from the prefix
// index (the MTP cache needs every prompt row). stats.drafted / stats.accepted count drafts.
GenerateStats generate_mtp(const model::Model& m, KvPool& pool, KvPool& mtp_pool,
                           model::ForwardState& state, Sampler& sampler, const GenerateRequest& req,
                           const TokenCallback& on_token);

}  // namespace tern::infer
