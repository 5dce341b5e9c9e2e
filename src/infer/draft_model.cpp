#include "infer/draft_model.h"

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

void check_draft(const model::Model& m, const DraftModel& draft, const GenerateRequest& req,
                 int64_t max_draft, const model::ForwardState& st) {
  const int64_t V = m.config().vocab_size, Vd = draft.model.config().vocab_size;
  if (max_draft < 1) fail(ErrorKind::request, "a draft model needs at least 1 draft token");
  if (Vd > V)
    fail(ErrorKind::request, "the draft model's vocabulary (" + std::to_string(Vd) +
                                 " tokens) is larger than the main model's (" + std::to_string(V) +
                                 "); they must share a tokenizer");
  if (st.limits().max_tokens < max_draft + 1)
    fail(ErrorKind::request, "drafting " + std::to_string(max_draft) +
                                 " tokens needs a forward state of " +
                                 std::to_string(max_draft + 1) + " rows");
  if (draft.state.limits().max_tokens < 2)
    fail(ErrorKind::request, "the draft model needs a forward state of at least 2 rows");
  if (request_context(draft.model.config(), req) < request_context(m.config(), req))
    fail(ErrorKind::request, "the draft model's context (" +
                                 std::to_string(draft.model.config().max_position_embeddings) +
                                 " positions) is shorter than the request's (" +
                                 std::to_string(request_context(m.config(), req)) + ")");
}

}  // namespace

GenerateStats generate_draft(const model::Model& m, KvPool& pool, model::ForwardState& st,
                             Sampler& sampler, const DraftModel& draft, const GenerateRequest& req,
                             int64_t max_draft, const TokenCallback& on_token) {
  const int64_t P = int64_t(req.prompt.size()), ctx = request_context(m.config(), req);
  check_draft(m, draft, req, max_draft, st);
  const int64_t V = m.config().vocab_size;
  GenerateStats stats;
  stats.prompt_tokens = P;
  SequenceRunner main(m, pool, st), drafter(draft.model, draft.pool, draft.state);
  SpeculativeRule rule(sampler, V);
  sampler.accept_prompt(req.prompt);
  auto emit = [&](int32_t t) { return emit_token(t, req, stats, on_token); };

  const auto t0 = std::chrono::steady_clock::now();
  stats.reused_tokens = main.prefill(req.prompt, /*reuse=*/true);
  // The drafter runs the prompt except its last token, which goes with the first step's rows.
  if (P > 1 && std::all_of(req.prompt.begin(), req.prompt.end(),
                           [&](int32_t t) { return t < draft.model.config().vocab_size; }))
    drafter.prefill(std::span(req.prompt).first(size_t(P - 1)), /*reuse=*/true);
  stats.prefill_seconds = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  if (req.max_new_tokens == 0) return stats;
  int32_t x = sampler.sample(main.logits(0));
  sampler.accept(x);

  // Invariant: x (emitted, not yet run) sits at position L = main.length(); the drafter has run
  // positions [0, drafter.length()) and `pending` holds the accepted tokens after them, x last.
  std::vector<int32_t> pending = {req.prompt.back(), x}, rows, drafts;
  std::vector<std::vector<float>> q(static_cast<size_t>(max_draft));
  // A token the drafter has no row for (a main model with a larger vocabulary) ends drafting;
  // the main model goes on one token per step.
  const int64_t Vd = draft.model.config().vocab_size;
  auto drafter_knows = [&](int32_t t) { return t < Vd; };
  bool drafting = std::all_of(req.prompt.begin(), req.prompt.end(), drafter_knows);
  bool go = emit(x);
  while (go) {
    const int64_t L = main.length();
    if (L >= ctx) {
      stats.stop = StopReason::context;
      break;
    }
    drafting = drafting && std::all_of(pending.begin(), pending.end(), drafter_knows);
    if (!drafting) pending.clear();
    const int64_t k =
        drafting ? std::min({max_draft, ctx - 1 - L, req.max_new_tokens - stats.generated}) : 0;
    drafts.clear();
    if (k > 0) {
      // Draft d_1 from the pending tokens, then d_{i+1} from d_i, running past the drafter's
      // advanced length: only what the main model accepts is advanced over below.
      drafter.run(pending, 1);
      drafter.advance(pending);
      for (int64_t i = 0; i < k; ++i) {
        if (i > 0) {
          const int32_t prev[1] = {drafts.back()};
          drafter.run(prev, 1, i - 1);
        }
        drafts.push_back(rule.draft(drafter.logits(0), L + 1 + i, q[size_t(i)]));
      }
      pending.clear();
    }
    rows.assign(1, x);
    rows.insert(rows.end(), drafts.begin(), drafts.end());
    main.run(rows, k + 1);  // logits row i predicts position L + 1 + i
    stats.drafted += k;
    const DraftVerdict v = verify_drafts(
        rule, sampler, drafts, [&](int64_t i) { return main.logits(i); },
        [&](int64_t i) {
          return rule.greedy() ? std::span<const float>() : std::span(q[size_t(i)]);
        },
        L + 1, emit);
    stats.accepted += v.accepted;
    main.advance(std::span(rows).first(size_t(1 + v.accepted)));
    // The drafter ran drafts d_1..d_{k-1}; keep those that were accepted, and queue the rest
    // of the accepted tokens (d_k when every draft was kept) for the next step.
    // (With k = 0 the drafter did not run and `pending` still ends with x.)
    const int64_t ran = std::min<int64_t>(v.accepted, std::max<int64_t>(k - 1, 0));
    drafter.advance(std::span(drafts).first(size_t(ran)));
    for (int64_t i = ran; i < v.accepted; ++i) pending.push_back(drafts[size_t(i)]);
    if (v.next < 0) break;
    go = emit(v.next);
    pending.push_back(v.next);
    x = v.next;
  }
  stats.decode_seconds = seconds_since(t1);
  return stats;
}

}  // namespace tern::infer
