// Generation of one sequence over a shared KV pool: reuse cached prompt blocks, prefill the
// rest in chunks (logits only for the last prompt row), then decode one token per step with
// the sequence's Sampler until a stop token, the token budget, the context end, or the caller
// says stop. Owns only the loop; the model, the pool, the forward state and the sampler are
// the caller's, so a server can run many of these over one model and pool.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "infer/kv_pool.h"
#include "infer/sampler.h"
#include "model/forward_state.h"
#include "model/model.h"

namespace tern::infer {

struct GenerateRequest {
  std::vector<int32_t> prompt;    // at least one token
  int64_t max_new_tokens = 256;   // >= 0
  std::vector<int32_t> stop_ids;  // end of generation when sampled (not passed to on_token)
  int64_t context = 0;            // positions this sequence may use; 0: max_position_embeddings
};

// constraint: the sampler's TokenConstraint is satisfied (a complete JSON document).
enum class StopReason { stop_token, max_tokens, context, caller, constraint };
const char* stop_reason_name(StopReason r);

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t reused_tokens = 0;  // prompt tokens whose KV came from the pool's prefix index
  int64_t generated = 0;      // tokens passed to on_token
  double prefill_seconds = 0, decode_seconds = 0;
  StopReason stop = StopReason::max_tokens;
  int64_t drafted = 0, accepted = 0;  // speculative decoding only (speculative.h)
};

// The request's context in positions (req.context capped by the model's); ErrorKind::request
// for an empty prompt, one that leaves no room to generate (naming both numbers), or a
// negative budget. Every generation loop checks its request with this.
int64_t request_context(const model::ModelConfig& c, const GenerateRequest& req);

// Called with each generated token; return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

// Hands a generated token to the caller and says whether generation goes on: false on a stop
// id (not passed on), when the callback declines, or when the budget is spent, with stats.stop
// set. The speculative loops emit several tokens per step through it.
bool emit_token(int32_t token, const GenerateRequest& req, GenerateStats& stats,
                const TokenCallback& on_token);

// ErrorKind::request when the prompt is empty or does not fit the context (naming both
// numbers); ErrorKind::resource when the pool runs out of blocks. `state` must allow at least
// one row; prefill chunks are its max_tokens rows.
GenerateStats generate(const model::Model& m, KvPool& pool, model::ForwardState& state,
                       Sampler& sampler, const GenerateRequest& req, const TokenCallback& on_token);

}  // namespace tern::infer
