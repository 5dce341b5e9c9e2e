#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace tern::infer {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs tokens at the sequence's next positions; logits of the last row into `logits` when
// `want_last` (else no LM head at all). positions / seq_ids hold at least tokens.size() rows.
void run_rows(const model::Model& m, KvPool& pool, model::ForwardState& st, PooledSequence& seq,
              std::span<const int32_t> tokens, bool want_last, std::vector<float>& logits,
              std::span<int64_t> positions, std::span<const int32_t> seq_ids) {
  const size_t n = tokens.size();
  seq.reserve(int64_t(n));
  for (size_t i = 0; i < n; ++i) positions[i] = seq.length() + int64_t(i);
  const model::SeqBlocks seqs[1] = {seq.blocks()};
  const int32_t last[1] = {int32_t(n) - 1};
  const model::Batch b{tokens, positions.first(n), seq_ids.first(n), seqs,
                       want_last ? std::span<const int32_t>(last) : std::span<const int32_t>()};
  m.forward(b, pool.store(), st, logits);
  seq.advance(tokens);
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
  }
  return "?";
}

GenerateStats generate(const model::Model& m, KvPool& pool, model::ForwardState& st,
                       Sampler& sampler, const GenerateRequest& req,
                       const TokenCallback& on_token) {
  const model::ModelConfig& c = m.config();
  const int64_t P = int64_t(req.prompt.size());
  const int64_t ctx = req.context > 0 ? std::min(req.context, c.max_position_embeddings)
                                      : c.max_position_embeddings;
  if (P == 0) fail(ErrorKind::request, "the prompt is empty (at least one token is needed)");
  if (P >= ctx)
    fail(ErrorKind::request, "the prompt has " + std::to_string(P) +
                                 " tokens but the context holds " + std::to_string(ctx) +
                                 ", including at least one to generate");
  if (req.max_new_tokens < 0) fail(ErrorKind::request, "max_new_tokens must be >= 0");
  GenerateStats stats;
  stats.prompt_tokens = P;
  const int64_t chunk = st.limits().max_tokens;
  std::vector<float> logits(size_t(c.vocab_size));
  std::vector<int64_t> positions(static_cast<size_t>(chunk));  // sized once for the loop
  const std::vector<int32_t> seq_ids(static_cast<size_t>(chunk), 0);
  PooledSequence seq(pool);
  sampler.accept_prompt(req.prompt);

  const auto t0 = std::chrono::steady_clock::now();
  stats.reused_tokens = seq.reuse_prefix(req.prompt);
  for (int64_t p = stats.reused_tokens; p < P; p += chunk) {
    const int64_t n = std::min(chunk, P - p);
    run_rows(m, pool, st, seq, std::span(req.prompt).subspan(size_t(p), size_t(n)), p + n == P,
             logits, positions, seq_ids);
  }
  stats.prefill_seconds = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  while (true) {
    if (stats.generated >= req.max_new_tokens) {
      stats.stop = StopReason::max_tokens;
      break;
    }
    const int32_t tok = sampler.sample(logits);
    sampler.accept(tok);
    if (std::find(req.stop_ids.begin(), req.stop_ids.end(), tok) != req.stop_ids.end()) {
      stats.stop = StopReason::stop_token;
      break;
    }
    ++stats.generated;
    if (!on_token(tok)) {
      stats.stop = StopReason::caller;
      break;
    }
    if (stats.generated >= req.max_new_tokens) {
      stats.stop = StopReason::max_tokens;
      break;
    }
    if (seq.length() >= ctx) {
      stats.stop = StopReason::context;
      break;
    }
    const int32_t one[1] = {tok};
    run_rows(m, pool, st, seq, one, true, logits, positions, seq_ids);
  }
  stats.decode_seconds = seconds_since(t1);
  return stats;
}

}  // namespace tern::infer
