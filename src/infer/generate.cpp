#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "infer/sequence_runner.h"

namespace tern::infer {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::stop_token:
      return "stop token";
    case StopReason::max_tokens:
      return "token limit";
    case StopReason::context:
      return "context full";
    case StopReason::caller:
      return "stopped";
    case StopReason::constraint:
      return "document complete";
  }
  return "?";
}

int64_t request_context(const model::ModelConfig& c, const GenerateRequest& req) {
  const int64_t P = int64_t(req.prompt.size());
  const int64_t ctx = req.context > 0 ? std::min(req.context, c.max_position_embeddings)
                                      : c.max_position_embeddings;
  if (P == 0) fail(ErrorKind::request, "the prompt is empty (at least one token is needed)");
  if (P >= ctx)
    fail(ErrorKind::request, "the prompt has " + std::to_string(P) +
                                 " tokens but the context holds " + std::to_string(ctx) +
                                 ", including at least one to generate");
  if (req.max_new_tokens < 0) fail(ErrorKind::request, "max_new_tokens must be >= 0");
  return ctx;
}

bool emit_token(int32_t t, const GenerateRequest& req, GenerateStats& stats,
                const TokenCallback& on_token) {
  if (std::find(req.stop_ids.begin(), req.stop_ids.end(), t) != req.stop_ids.end()) {
    stats.stop = StopReason::stop_token;
    return false;
  }
  ++stats.generated;
  if (!on_token(t)) {
    stats.stop = StopReason::caller;
    return false;
  }
  if (stats.generated >= req.max_new_tokens) {
    stats.stop = StopReason::max_tokens;
    return false;
  }
  return true;
}

GenerateStats generate(const model::Model& m, KvPool& pool, model::ForwardState& st,
                       Sampler& sampler, const GenerateRequest& req,
                       const TokenCallback& on_token) {
  const int64_t P = int64_t(req.prompt.size()), ctx = request_context(m.config(), req);
  GenerateStats stats;
  stats.prompt_tokens = P;
  SequenceRunner runner(m, pool, st);
  sampler.accept_prompt(req.prompt);

  const auto t0 = std::chrono::steady_clock::now();
  stats.reused_tokens = runner.prefill(req.prompt, /*reuse=*/true);
  stats.prefill_seconds = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  while (true) {
    if (stats.generated >= req.max_new_tokens) {
      stats.stop = StopReason::max_tokens;
      break;
    }
    const int32_t tok = sampler.sample(runner.logits(0));
    sampler.accept(tok);
    if (!emit_token(tok, req, stats, on_token)) break;
    if (sampler.constraint() && sampler.constraint()->finished()) {
      stats.stop = StopReason::constraint;
      break;
    }
    if (runner.length() >= ctx) {
      stats.stop = StopReason::context;
      break;
    }
    const int32_t one[1] = {tok};
    runner.run(one, 1);
    runner.advance(one);
  }
  stats.decode_seconds = seconds_since(t1);
  return stats;
}

}  // namespace tern::infer
