#include "serve/engine.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "infer/speculative_rule.h"
#include "serve/api_error.h"

namespace tern::serve {

namespace {
GenerationResult cancelled(const std::string& why) {
  GenerationResult r;
  r.reason = FinishReason::cancelled;
  r.error = why;
  return r;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

struct Engine::Slot {
  Slot(std::shared_ptr<Generation> g, GenerationRequest r, infer::KvPool& pool, int32_t vocab,
       infer::KvPool* mtp_pool)
      : gen(std::move(g)), req(std::move(r)), seq(pool), sampler(req.sampling, vocab, req.stream) {
    sampler.constrain(req.constraint);
    // A constrained sequence does not draft: a draft would be masked by a grammar state that
    // has not seen the token before it.
    if (mtp_pool && !req.constraint) {
      mtp.emplace(*mtp_pool);
      rule.emplace(sampler, vocab);
    }
  }
  std::shared_ptr<Generation> gen;
  GenerationRequest req;
  infer::PooledSequence seq;
  infer::Sampler sampler;
  int64_t prefilled = 0;    // prompt tokens already in the cache
  int32_t next_token = -1;  // sampled, not yet run (decoding when >= 0)
  bool done = false;
  GenerationResult result;
  // This step's rows.
  int64_t rows = 0, logit_index = -1, row0 = 0;
  // MTP drafting (when mtp is set): the module's cache, the rows it has not run yet (the main
  // model's hidden state at a position and the token after it), and this step's draft.
  std::optional<infer::PooledSequence> mtp;
  std::optional<infer::SpeculativeRule> rule;
  std::vector<float> pending_hidden;
  std::vector<int32_t> pending_tokens;
  int32_t draft = -1;
  std::vector<float> draft_probs;

  void pend(const float* hidden, int64_t d, int32_t next) {
    pending_hidden.insert(pending_hidden.end(), hidden, hidden + d);
    pending_tokens.push_back(next);
  }
};

TokenEvent token_logprobs(std::span<const float> logits, int32_t token, int32_t top) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v - mx));
  const float lse = mx + float(std::log(sum));
  TokenEvent e;
  e.token = token;
  e.logprob = logits[size_t(token)] - lse;
  if (top > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    const size_t k = std::min(size_t(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(k), ids.end(),
                      [&](int32_t a, int32_t b) {
                        return logits[size_t(a)] > logits[size_t(b)] ||
                               (logits[size_t(a)] == logits[size_t(b)] && a < b);
                      });
    for (size_t i = 0; i < k; ++i) e.top.push_back({ids[i], logits[size_t(ids[i])] - lse});
  }
  return e;
}

Engine::Engine(const model::Model& m, infer::KvPool& pool, model::ForwardState& st, EngineOptions o)
    : m_(m), pool_(pool), st_(st), opt_(o) {
  const model::ModelConfig& c = m.config();
  context_ =
      o.context > 0 ? std::min(o.context, c.max_position_embeddings) : c.max_position_embeddings;
  if (opt_.parallel < 1 || opt_.max_queue < 0)
    fail(ErrorKind::config, "the server needs at least one slot and a queue of 0 or more");
  const int64_t per_seq = (context_ + pool.block_tokens() - 1) / pool.block_tokens();
  if (pool.n_blocks() < opt_.parallel * per_seq)
    fail(ErrorKind::config, "the KV pool holds " + std::to_string(pool.n_blocks()) + " blocks; " +
                                std::to_string(opt_.parallel) + " sequences of " +
                                std::to_string(context_) + " positions need " +
                                std::to_string(opt_.parallel * per_seq));
  if (st.limits().max_tokens < opt_.parallel)
    fail(ErrorKind::config, "a step holds " + std::to_string(st.limits().max_tokens) +
                                " rows, fewer than the " + std::to_string(opt_.parallel) +
                                " sequences that decode together");
  const size_t rows = size_t(st.limits().max_tokens);
  tokens_.resize(rows);
  seq_ids_.resize(rows);
  positions_.resize(rows);
  logit_rows_.reserve(size_t(opt_.parallel));
  seqs_.reserve(size_t(opt_.parallel));
  logits_.resize(size_t(opt_.parallel * c.vocab_size));
  batch_.reserve(size_t(opt_.parallel));
  stats_.kv_blocks = pool.n_blocks();
  if (drafting()) {
    if (m.weights().mtp.empty())
      fail(ErrorKind::config, "MTP drafting needs the model loaded with its MTP module");
    if (opt_.mtp_pool->n_blocks() < pool.n_blocks() ||
        opt_.mtp_pool->block_tokens() != pool.block_tokens())
      fail(ErrorKind::config, "the MTP pool must match the main pool's blocks");
    if (st.limits().max_tokens < 2 * opt_.parallel)
      fail(ErrorKind::config, "a step holds " + std::to_string(st.limits().max_tokens) +
                                  " rows; drafting needs two per sequence (" +
                                  std::to_string(2 * opt_.parallel) + ")");
    logits_.resize(size_t(2 * opt_.parallel * c.vocab_size));
    hidden_.resize(rows * size_t(c.hidden_size));
    mtp_hidden_.resize(rows * size_t(c.hidden_size));
    mtp_logits_.resize(size_t(opt_.parallel * c.vocab_size));
    stats_.mtp = true;
  }
  int64_t moe_layers = 0;
  for (const auto& L : m.weights().layers) moe_layers += L.is_moe ? 1 : 0;
  if (moe_layers > 0) {
    stats_.experts = c.n_routed_experts;
    stats_.expert_tokens.assign(size_t(moe_layers * c.n_routed_experts), 0);
    step_experts_.resize(stats_.expert_tokens.size());
  }
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& g : queue_) g->finish(cancelled("the server is stopping"));
}

int32_t Engine::vocab_size() const {
  return int32_t(m_.config().vocab_size);
}

BackendStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats s = stats_;
  s.queued = int64_t(queue_.size());
  return s;
}

std::shared_ptr<Generation> Engine::submit(GenerationRequest r) {
  const int64_t P = int64_t(r.prompt.size());
  if (P == 0) bad_request("messages", "the prompt is empty");
  if (P >= context_)
    throw ApiError(400,
                   "the prompt is " + std::to_string(P) + " tokens but the context holds " +
                       std::to_string(context_) +
                       " (it must leave room for at least one generated token)",
                   "invalid_request_error", "messages", "context_length_exceeded");
  for (int32_t id : r.prompt)
    if (id < 0 || id >= vocab_size())
      bad_request("prompt", "token id " + std::to_string(id) + " is outside the vocabulary of " +
                                std::to_string(vocab_size()));
  infer::Sampler check(r.sampling, vocab_size(), r.stream);  // refuses bad values up front
  (void)check;
  auto g = std::make_shared<Generation>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw ApiError(503, "the server is stopping", "server_error");
    if (stats_.active + int64_t(queue_.size()) >= opt_.parallel + opt_.max_queue)
      throw ApiError(429,
                     "the server is busy: " + std::to_string(queue_.size()) +
                         " requests are already waiting; retry shortly",
                     "rate_limit_error", "", "queue_full");
    queue_.push_back(g);
    queued_requests_.push_back(std::move(r));
  }
  wake_.notify_all();
  return g;
}

void Engine::loop() {
  std::deque<std::shared_ptr<Generation>> incoming;
  std::deque<GenerationRequest> requests;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] {
        return stopping_ || !slots_.empty() ||
               (!queue_.empty() && int64_t(slots_.size()) < opt_.parallel);
      });
      if (stopping_) break;
      while (!queue_.empty() && int64_t(slots_.size() + incoming.size()) < opt_.parallel) {
        incoming.push_back(std::move(queue_.front()));
        requests.push_back(std::move(queued_requests_.front()));
        queue_.pop_front();
        queued_requests_.pop_front();
      }
      stats_.active = int64_t(slots_.size() + incoming.size());
    }
    try {
      admit(incoming, requests);
      step();
    } catch (const std::exception& e) {
      // step() ends a failing sequence itself; whatever still gets here ends this step's
      // sequences with the error, never the server.
      GenerationResult failed;
      failed.reason = FinishReason::error;
      failed.error = e.what();
      for (auto& s : slots_)
        if (!s->done) finish(*s, FinishReason::error, e.what());
      slots_.clear();
      for (auto& g : incoming) g->finish(failed);
      incoming.clear();
      requests.clear();
    }
    std::lock_guard<std::mutex> lock(mu_);
    stats_.active = int64_t(slots_.size());
    stats_.kv_blocks_used = pool_.n_blocks() - pool_.free_blocks();
  }
  for (auto& s : slots_) finish(*s, FinishReason::cancelled, "the server is stopping");
  for (auto& g : incoming) g->finish(cancelled("the server is stopping"));
  slots_.clear();
}

void Engine::admit(std::deque<std::shared_ptr<Generation>>& incoming,
                   std::deque<GenerationRequest>& requests) {
  while (!incoming.empty()) {
    auto g = std::move(incoming.front());
    GenerationRequest r = std::move(requests.front());
    incoming.pop_front();
    requests.pop_front();
    if (g->cancelled()) {
      g->finish(cancelled("the client went away"));
      continue;
    }
    auto s = std::make_unique<Slot>(g, std::move(r), pool_, vocab_size(), opt_.mtp_pool);
    s->result.prompt_tokens = int64_t(s->req.prompt.size());
    s->result.queue_seconds = seconds_since(g->submitted);
    s->sampler.accept_prompt(s->req.prompt);
    // Cached prompt blocks are worth more than drafts (a long shared system prompt is not
    // recomputed), and the MTP cache needs every prompt row's hidden state: a sequence that
    // reuses blocks decodes without drafting, the others draft.
    s->prefilled = s->seq.reuse_prefix(s->req.prompt);
    if (s->prefilled > 0) s->mtp.reset(), s->rule.reset();
    s->result.cached_tokens = s->prefilled;
    slots_.push_back(std::move(s));
  }
}

void Engine::finish(Slot& s, FinishReason reason, const std::string& error) {
  s.done = true;
  s.result.reason = reason;
  s.result.error = error;
  s.gen->finish(s.result);
}

bool Engine::take_token(Slot& s, std::span<const float> logits) {
  return emit(s, s.sampler.sample(logits), logits, s.seq.length());
}

bool Engine::emit(Slot& s, int32_t tok, std::span<const float> logits, int64_t position) {
  if (std::find(s.req.stop_ids.begin(), s.req.stop_ids.end(), tok) != s.req.stop_ids.end()) {
    s.result.stop_token = tok;
    finish(s, FinishReason::stop);
    return false;
  }
  s.sampler.accept(tok);  // first: a token its constraint refuses is never sent
  s.gen->push(s.req.top_logprobs >= 0 ? token_logprobs(logits, tok, s.req.top_logprobs)
                                      : TokenEvent{tok, 0.0f, {}});
  if (++s.result.generated == 1) s.result.first_token_seconds = seconds_since(s.gen->submitted);
  if (s.sampler.constraint() && s.sampler.constraint()->finished()) {
    finish(s, FinishReason::stop);
    return false;
  }
  // A token at the context's last position + 1 is emitted but can never be run.
  if (s.result.generated >= s.req.max_tokens || position >= context_) {
    finish(s, FinishReason::length);
    return false;
  }
  s.next_token = tok;
  return true;
}

void Engine::draft_step() {
  const int64_t d = m_.config().hidden_size, V = m_.config().vocab_size;
  const int64_t budget = st_.limits().max_tokens;
  int64_t rows = 0;
  logit_rows_.clear();
  seqs_.clear();
  batch_.clear();
  for (auto& s : slots_) {
    s->draft = -1;
    s->logit_index = -1;
    const int64_t n = int64_t(s->pending_tokens.size());
    if (!s->mtp || n == 0 || rows + n > budget) continue;  // what does not fit waits a step
    const int32_t id = int32_t(seqs_.size());
    s->mtp->reserve(n);
    seqs_.push_back(s->mtp->blocks());
    std::copy(s->pending_hidden.begin(), s->pending_hidden.end(), mtp_hidden_.begin() + rows * d);
    for (int64_t i = 0; i < n; ++i) {
      tokens_[size_t(rows + i)] = s->pending_tokens[size_t(i)];
      positions_[size_t(rows + i)] = s->mtp->length() + i;
      seq_ids_[size_t(rows + i)] = id;
    }
    rows += n;
    // The last pending row of a decoding sequence pairs h_{L-1} with its token at L: its
    // logits draft the token at L + 1, when the context has room for both.
    if (s->next_token >= 0 && s->seq.length() + 1 < context_) {
      s->logit_index = int64_t(logit_rows_.size());
      logit_rows_.push_back(int32_t(rows - 1));
    }
    batch_.push_back(s.get());
  }
  if (rows == 0) return;
  const model::Batch b{std::span(tokens_).first(size_t(rows)),
                       std::span(positions_).first(size_t(rows)),
                       std::span(seq_ids_).first(size_t(rows)), seqs_, logit_rows_};
  const auto hidden = std::span<const float>(mtp_hidden_).first(size_t(rows * d));
  if (opt_.relay) opt_.relay->announce(ForwardRelay::Kind::mtp, b, hidden);
  m_.forward_mtp(b, hidden, opt_.mtp_pool->store(), st_, mtp_logits_);
  for (Slot* s : batch_) {
    s->mtp->advance(s->pending_tokens);
    s->pending_tokens.clear();
    s->pending_hidden.clear();
    if (s->logit_index < 0) continue;
    const auto row = std::span(mtp_logits_).subspan(size_t(s->logit_index * V), size_t(V));
    s->draft = s->rule->draft(row, s->seq.length() + 1, s->draft_probs);
  }
}

void Engine::step() {
  // Cancelled requests leave before the step: their blocks are free for this one.
  std::erase_if(slots_, [&](const std::unique_ptr<Slot>& s) {
    if (s->gen->cancelled()) finish(*s, FinishReason::cancelled);
    return s->done;
  });
  if (slots_.empty()) return;
  if (drafting()) {
    try {
      draft_step();
    } catch (const std::exception& e) {
      for (Slot* s : batch_) finish(*s, FinishReason::error, e.what());
      std::erase_if(slots_, [](const std::unique_ptr<Slot>& s) { return s->done; });
      return;
    }
  }
  const int64_t budget = st_.limits().max_tokens;
  int64_t rows = 0;
  // Decoding sequences first (one row each, two with a draft; never starved), then prompt
  // chunks.
  for (auto& s : slots_) {
    s->rows = s->next_token < 0 ? 0 : s->draft >= 0 ? 2 : 1;
    rows += s->rows;
  }
  for (auto& s : slots_) {
    if (s->next_token >= 0 || rows >= budget) continue;
    s->rows = std::min(budget - rows, int64_t(s->req.prompt.size()) - s->prefilled);
    rows += s->rows;
  }
  logit_rows_.clear();
  seqs_.clear();
  std::vector<Slot*>& in_batch = batch_;
  in_batch.clear();
  try {
    for (auto& s : slots_)
      if (s->rows > 0) s->seq.reserve(s->rows);
    int64_t row = 0;
    for (auto& s : slots_) {
      if (s->rows == 0) continue;
      const int32_t id = int32_t(seqs_.size());
      seqs_.push_back(s->seq.blocks());
      const bool prefill = s->next_token < 0;
      s->row0 = row;
      for (int64_t i = 0; i < s->rows; ++i, ++row) {
        tokens_[size_t(row)] = prefill  ? s->req.prompt[size_t(s->prefilled + i)]
                               : i == 0 ? s->next_token
                                        : s->draft;
        positions_[size_t(row)] = s->seq.length() + i;
        seq_ids_[size_t(row)] = id;
      }
      const bool wants = !prefill || s->prefilled + s->rows == int64_t(s->req.prompt.size());
      s->logit_index = wants ? int64_t(logit_rows_.size()) : -1;
      if (wants && s->draft >= 0) logit_rows_.push_back(int32_t(row - 2));  // verifies the draft
      if (wants) logit_rows_.push_back(int32_t(row - 1));
      in_batch.push_back(s.get());
    }
    const model::Batch b{std::span(tokens_).first(size_t(rows)),
                         std::span(positions_).first(size_t(rows)),
                         std::span(seq_ids_).first(size_t(rows)), seqs_, logit_rows_};
    std::fill(step_experts_.begin(), step_experts_.end(), 0);
    model::ForwardOptions fo;
    fo.expert_counts = step_experts_;
    if (drafting())
      fo.hidden_out = std::span(hidden_).first(size_t(rows * m_.config().hidden_size));
    if (opt_.relay) opt_.relay->announce(ForwardRelay::Kind::main, b);
    m_.forward(b, pool_.store(), st_, logits_, fo);
  } catch (const std::exception& e) {
    for (Slot* s : in_batch) finish(*s, FinishReason::error, e.what());
    std::erase_if(slots_, [](const std::unique_ptr<Slot>& s) { return s->done; });
    return;
  }
  const int64_t V = m_.config().vocab_size, d = m_.config().hidden_size;
  const auto logits_row = [&](int64_t k) {
    return std::span<const float>(logits_).subspan(size_t(k * V), size_t(V));
  };
  const auto hidden_row = [&](int64_t r) { return hidden_.data() + r * d; };
  int64_t drafted = 0, accepted = 0;
  // Sampling, verification and the constraint's bookkeeping run per sequence: what one of
  // them throws ends that sequence with an error, never the loop.
  const auto after_forward = [&](Slot* s) {
    if (s->next_token >= 0 && s->draft >= 0) {
      // Verify: row logit_index predicts the draft's position, the next row the one after it.
      ++drafted;
      const int64_t L = s->seq.length();
      bool kept = false;
      const int32_t y = s->rule->verify(
          logits_row(s->logit_index), s->draft,
          s->rule->greedy() ? std::span<const float>() : std::span<const float>(s->draft_probs),
          L + 1, &kept);
      const int32_t pair[2] = {s->next_token, s->draft};
      s->seq.advance(std::span(pair, kept ? 2 : 1));  // a rejected draft's row is overwritten
      if (!emit(*s, y, logits_row(s->logit_index), L + 1)) return;
      s->pend(hidden_row(s->row0), d, y);
      if (!kept) return;
      ++accepted;
      if (take_token(*s, logits_row(s->logit_index + 1)))
        s->pend(hidden_row(s->row0 + 1), d, s->next_token);
      return;
    }
    if (s->next_token >= 0) {
      s->seq.advance(std::span(&s->next_token, 1));
    } else {
      s->seq.advance(std::span(s->req.prompt).subspan(size_t(s->prefilled), size_t(s->rows)));
      // The MTP module's rows for this chunk: each position's hidden state with the prompt
      // token after it (the last prompt position waits for the sampled token).
      const int64_t P = int64_t(s->req.prompt.size());
      if (s->mtp)
        for (int64_t i = 0; i < s->rows && s->prefilled + i + 1 < P; ++i)
          s->pend(hidden_row(s->row0 + i), d, s->req.prompt[size_t(s->prefilled + i + 1)]);
      s->prefilled += s->rows;
    }
    if (s->logit_index < 0) return;
    if (s->next_token < 0 && s->req.max_tokens == 0) {
      finish(*s, FinishReason::length);
      return;
    }
    if (take_token(*s, logits_row(s->logit_index)) && s->mtp)
      s->pend(hidden_row(s->row0 + s->rows - 1), d, s->next_token);
  };
  for (Slot* s : in_batch) {
    try {
      after_forward(s);
    } catch (const std::exception& e) {
      if (!s->done) finish(*s, FinishReason::error, e.what());
    }
  }
  std::erase_if(slots_, [](const std::unique_ptr<Slot>& s) { return s->done; });
  std::lock_guard<std::mutex> lock(mu_);
  stats_.steps += 1;
  stats_.batch_rows += rows;
  stats_.mtp_drafted += drafted;
  stats_.mtp_accepted += accepted;
  for (size_t i = 0; i < step_experts_.size(); ++i) stats_.expert_tokens[i] += step_experts_[i];
}

}  // namespace tern::serve
