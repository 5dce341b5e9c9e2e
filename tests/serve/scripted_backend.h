// ScriptedBackend: a test-only Backend that "generates" a given token list (one token every
// `delay`, on its own thread per request) instead of running a model, so the API layer's
// reasoning split, tool-call parsing, streaming and cancellation can be tested with outputs a
// random tiny model would never produce. Honours max_tokens, stop ids and cancellation as the
// real Engine does, and refuses with 429 beyond `capacity` requests in flight.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "serve/api_error.h"
#include "serve/generation.h"

namespace tern::test {

class ScriptedBackend final : public serve::Backend {
 public:
  ScriptedBackend(std::vector<int32_t> script, int32_t vocab, int64_t context = 4096)
      : script_(std::move(script)), vocab_(vocab), context_(context) {}
  ~ScriptedBackend() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : threads_) t.join();
  }

  void set_script(std::vector<int32_t> s) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(s);
  }
  std::chrono::milliseconds delay{1};
  int capacity = 1000;
  std::atomic<int> in_flight{0}, cancelled{0}, submitted{0};

  std::shared_ptr<serve::Generation> submit(serve::GenerationRequest r) override {
    if (int64_t(r.prompt.size()) >= context_)
      throw serve::ApiError(400, "the prompt does not fit", "invalid_request_error", "messages");
    if (in_flight.load() >= capacity)
      throw serve::ApiError(429, "busy", "rate_limit_error", "", "queue_full");
    ++in_flight;
    ++submitted;
    auto g = std::make_shared<serve::Generation>();
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([this, g, r = std::move(r), script = script_] {
      serve::GenerationResult res;
      res.prompt_tokens = int64_t(r.prompt.size());
      res.reason = serve::FinishReason::length;
      for (int32_t t : script) {
        std::this_thread::sleep_for(delay);
        if (g->cancelled()) {
          res.reason = serve::FinishReason::cancelled;
          ++cancelled;
          break;
        }
        if (std::find(r.stop_ids.begin(), r.stop_ids.end(), t) != r.stop_ids.end()) {
          res.reason = serve::FinishReason::stop;
          break;
        }
        if (res.generated == r.max_tokens) break;
        serve::TokenEvent e{t, -0.5f, {}};
        if (r.top_logprobs > 0) e.top.push_back({t, -0.5f});
        g->push(e);
        ++res.generated;
      }
      if (res.reason == serve::FinishReason::length && res.generated < r.max_tokens)
        res.reason = serve::FinishReason::stop;  // the script ran out: as if it ended the turn
      --in_flight;
      g->finish(res);
    });
    return g;
  }
  int64_t context() const override { return context_; }
  int32_t vocab_size() const override { return vocab_; }
  serve::BackendStats stats() const override { return reported; }
  serve::BackendStats reported;  // what stats() says

 private:
  std::mutex mu_;
  std::vector<int32_t> script_;
  int32_t vocab_;
  int64_t context_;
  std::vector<std::thread> threads_;
};

}  // namespace tern::test
