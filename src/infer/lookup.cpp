#include "infer/lookup.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "infer/sequence_runner.h"
#include "infer/speculative_rule.h"

namespace tern::infer {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<int32_t> lookup_draft(std::span<const int32_t> history, int64_t max_draft) {
  const int64_t H = int64_t(history.size());
  for (int64_t n = std::min<int64_t>(3, H - 1); n >= 1; --n) {
    const auto suffix = history.subspan(size_t(H - n));
    // The most recent earlier occurrence: its continuation is the likeliest to repeat.
    for (int64_t start = H - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), history.begin() + start)) continue;
      const int64_t from = start + n, count = std::min(max_draft, H - from);
      return {history.begin() + from, history.begin() + from + count};
    }
  }
  return {};
}

GenerateStats generate_lookup(const model::Model& m, KvPool& pool, model::ForwardState& st,
                              Sampler& sampler, const GenerateRequest& req, int64_t max_draft,
                              const TokenCallback& on_token) {
  const int64_t P = int64_t(req.prompt.size()), ctx = request_context(m.config(), req);
  if (max_draft < 1) fail(ErrorKind::request, "prompt lookup needs at least 1 draft token");
  if (st.limits().max_tokens < max_draft + 1)
    fail(ErrorKind::request, "prompt lookup of " + std::to_string(max_draft) +
                                 " tokens needs a forward state of " +
                                 std::to_string(max_draft + 1) + " rows");
  GenerateStats stats;
  stats.prompt_tokens = P;
  SequenceRunner runner(m, pool, st);
  sampler.accept_prompt(req.prompt);
  std::vector<int32_t> history(req.prompt.begin(), req.prompt.end());
  SpeculativeRule rule(sampler, m.config().vocab_size);
  auto emit = [&](int32_t t) {
    history.push_back(t);  // drafts may come from generated text too
    return emit_token(t, req, stats, on_token);
  };

  const auto t0 = std::chrono::steady_clock::now();
  stats.reused_tokens = runner.prefill(req.prompt, /*reuse=*/true);
  stats.prefill_seconds = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  if (req.max_new_tokens == 0) return stats;
  int32_t x = sampler.sample(runner.logits(0));
  sampler.accept(x);
  // Invariant: x (emitted, not yet run) sits at position L = runner.length().
  bool go = emit(x);
  std::vector<int32_t> rows;
  while (go) {
    const int64_t L = runner.length();
    if (L >= ctx) {
      stats.stop = StopReason::context;
      break;
    }
    // Drafts must fit the context and are worth no more than the budget left.
    const int64_t room = std::min(ctx - 1 - L, req.max_new_tokens - stats.generated);
    const std::vector<int32_t> draft = lookup_draft(history, std::min(max_draft, room));
    rows.assign(1, x);
    rows.insert(rows.end(), draft.begin(), draft.end());
    const int64_t k = int64_t(draft.size());
    runner.run(rows, k + 1);  // logits row i predicts position L + 1 + i
    stats.drafted += k;
    const DraftVerdict v = verify_drafts(
        rule, sampler, draft, [&](int64_t i) { return runner.logits(i); },
        [](int64_t) { return std::span<const float>(); }, L + 1, emit);
    // x and the accepted drafts keep their cache rows.
    runner.advance(std::span(rows).first(size_t(1 + v.accepted)));
    stats.accepted += v.accepted;
    if (v.next < 0) break;
    go = emit(v.next);
    x = v.next;
  }
  stats.decode_seconds = seconds_since(t1);
  return stats;
}

}  // namespace tern::infer
