// What the HTTP side and the engine exchange: a tokenized generation request, the stream of
// tokens it produces (a Generation, filled by the engine thread and drained by one HTTP thread),
// and the Backend interface the HTTP side talks to. Owns no model: the real Engine and the
// test-only ScriptedBackend both implement Backend, so the API layer is tested without weights.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "infer/sampling_params.h"
#include "infer/token_constraint.h"

namespace tern::serve {

struct GenerationRequest {
  std::vector<int32_t> prompt;    // at least one token
  int64_t max_tokens = 256;       // >= 0; capped by the context that is left
  std::vector<int32_t> stop_ids;  // end of generation when sampled (not emitted)
  infer::SamplingParams sampling;
  uint64_t stream = 0;        // names this sequence's random numbers (rng::stream_id)
  int32_t top_logprobs = -1;  // -1: no logprobs; 0..20: the chosen token's and that many more
  // Restricts the tokens sampled (JSON mode); the generation ends with `stop` once it is
  // satisfied. One per request: it carries this sequence's state.
  std::shared_ptr<infer::TokenConstraint> constraint;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

struct TokenEvent {
  int32_t token = 0;
  float logprob = 0;              // log p(token) under the model's distribution (raw logits)
  std::vector<TokenLogprob> top;  // the most likely tokens, when asked for
};

enum class FinishReason { stop, length, cancelled, error };
const char* finish_reason_name(FinishReason r);  // OpenAI's names: "stop", "length", ...

struct GenerationResult {
  FinishReason reason = FinishReason::stop;
  std::string error;        // reason == error: what went wrong
  int32_t stop_token = -1;  // reason == stop by a stop id: which one (not emitted)
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens whose KV came from the prefix cache
  int64_t generated = 0;
  double queue_seconds = 0;        // submitted -> admitted
  double first_token_seconds = 0;  // submitted -> first token (0 when none)
};

// One request's output channel. The engine pushes tokens and finishes once; the HTTP thread
// waits, drains and may cancel (client gone, stop string matched). Thread-safe.
class Generation {
 public:
  void push(TokenEvent e);
  void finish(GenerationResult r);
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Moves pending tokens into `out` (appending), waiting up to `timeout` for one. Returns the
  // result once finished and drained, else nullopt.
  std::optional<GenerationResult> wait(std::vector<TokenEvent>& out,
                                       std::chrono::milliseconds timeout);

  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenEvent> tokens_;
  std::optional<GenerationResult> result_;
  std::atomic<bool> cancelled_{false};
};

struct BackendStats {
  int64_t active = 0, queued = 0;  // sequences generating / waiting for a slot
  int64_t kv_blocks_used = 0, kv_blocks = 0;
  int64_t steps = 0, batch_rows = 0;  // forward steps run and rows they held, in total
  // Expert load: tokens routed to each expert, [MoE layers, experts], since the start; empty
  // for a dense model.
  std::vector<int64_t> expert_tokens;
  int64_t experts = 0;  // routed experts per MoE layer
  // MTP speculative decoding: drafts made and accepted, in total (0 without the module).
  int64_t mtp_drafted = 0, mtp_accepted = 0;
  bool mtp = false;  // the engine drafts with the model's MTP module
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Queues a request. Throws ApiError: 429 when the queue is full, 400 when the prompt leaves
  // no room to generate in the context.
  virtual std::shared_ptr<Generation> submit(GenerationRequest r) = 0;
  virtual int64_t context() const = 0;  // positions per sequence
  virtual int32_t vocab_size() const = 0;
  virtual BackendStats stats() const = 0;
};

}  // namespace tern::serve
