// Engine: the one loop that owns the model's forward, the shared KV pool and every active
// sequence, and runs continuous batching: requests wait in a bounded queue, join between steps
// when a slot is free, and every step is one batched forward in which each decoding sequence
// advances one token and the rest of the row budget prefills waiting prompts in chunks. HTTP
// threads only submit and drain Generations. Prompt prefixes already in the pool (a shared
// system prompt) are reused, not recomputed. With the model's MTP module (spec §8.3) every
// decoding sequence also drafts its next token: one batched MTP step drafts for all of them,
// the main step verifies each draft beside its sequence's token (two rows), and an accepted
// draft yields two tokens for one main step, as infer::generate_mtp does for one sequence.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "infer/kv_pool.h"
#include "infer/sampler.h"
#include "model/forward_state.h"
#include "model/model.h"
#include "serve/forward_relay.h"
#include "serve/generation.h"

namespace tern::serve {

struct EngineOptions {
  int64_t parallel = 4;    // sequences generating at once (slots)
  int64_t max_queue = 64;  // requests waiting for a slot; beyond it submit() answers 429
  int64_t context = 0;     // positions per sequence; 0: the model's
  // The MTP module's one-layer pool (same block size and count as the main pool): with it, and
  // a model loaded with its MTP module, sequences draft. A sequence whose prompt starts with
  // cached blocks reuses them and does not draft (the module's cache would need every prompt
  // row's hidden state); constrained (JSON) ones do not draft either.
  infer::KvPool* mtp_pool = nullptr;
  // Experts spread over ranks (--ep): every forward is announced to the follower ranks first.
  ForwardRelay* relay = nullptr;
};

class Engine final : public Backend {
 public:
  // The model, pool and state outlive the engine. The pool must hold `parallel` full contexts
  // (so a running sequence never finds it full) and the state at least `parallel` rows.
  // ErrorKind::config when they do not.
  Engine(const model::Model& m, infer::KvPool& pool, model::ForwardState& st, EngineOptions o);
  // Stops the loop; generations still running finish as cancelled.
  ~Engine() override;

  std::shared_ptr<Generation> submit(GenerationRequest r) override;
  int64_t context() const override { return context_; }
  int32_t vocab_size() const override;
  BackendStats stats() const override;

 private:
  struct Slot;
  void loop();
  void admit(std::deque<std::shared_ptr<Generation>>& incoming,
             std::deque<GenerationRequest>& requests);
  void step();
  // Samples the token after `logits` for slot s, emits it or finishes the slot. Returns false
  // when the slot is done.
  bool take_token(Slot& s, std::span<const float> logits);
  // Emits a token already chosen (and not yet accepted by the sampler) that sits at `position`;
  // logits are the row it was chosen from, for logprobs. Returns false when the slot is done.
  bool emit(Slot& s, int32_t token, std::span<const float> logits, int64_t position);
  // The MTP step: every drafting slot's pending module rows in one batch, and a draft for each
  // decoding slot with room for two more positions.
  void draft_step();
  bool drafting() const { return opt_.mtp_pool != nullptr; }
  void finish(Slot& s, FinishReason reason, const std::string& error = "");

  const model::Model& m_;
  infer::KvPool& pool_;
  model::ForwardState& st_;
  EngineOptions opt_;
  int64_t context_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Generation>> queue_;  // guarded by mu_, with queued_requests_
  std::deque<GenerationRequest> queued_requests_;
  bool stopping_ = false;
  BackendStats stats_;  // guarded by mu_

  // Engine thread only.
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<int32_t> tokens_, seq_ids_, logit_rows_;
  std::vector<int64_t> positions_;
  std::vector<model::SeqBlocks> seqs_;
  std::vector<float> logits_;          // [parallel, vocab]
  std::vector<int64_t> step_experts_;  // this step's expert choices, added to stats_ after it
  std::vector<Slot*> batch_;           // this step's sequences
  std::vector<float> hidden_;          // [rows, d]: the main step's hidden states (MTP only)
  std::vector<float> mtp_hidden_, mtp_logits_;  // the MTP step's inputs and logits
  std::thread thread_;
};

// The log-probability of `token` under softmax(logits) and, when top > 0, the `top` most
// likely tokens (descending; ties: lower id first). logits: [vocab].
TokenEvent token_logprobs(std::span<const float> logits, int32_t token, int32_t top);

}  // namespace tern::serve
