#include "infer/speculative.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "infer/speculative_rule.h"

namespace tern::infer {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The state of one sequence: the main model's and the MTP module's caches, and the buffers
// one step needs, sized once.
struct Spec {
  const model::Model& m;
  KvPool& pool;
  KvPool& mtp_pool;
  model::ForwardState& st;
  Sampler& sampler;
  SpeculativeRule rule;
  PooledSequence seq, mtp;
  int64_t d, V;
  std::vector<float> logits, hidden, draft_probs;  // [2, V] / [rows, d] / [V]
  std::vector<int64_t> positions;
  std::vector<int32_t> seq_ids, rows;

  Spec(const model::Model& model, KvPool& p, KvPool& mp, model::ForwardState& s, Sampler& smp)
      : m(model),
        pool(p),
        mtp_pool(mp),
        st(s),
        sampler(smp),
        rule(smp, model.config().vocab_size),
        seq(p),
        mtp(mp),
        d(model.config().hidden_size),
        V(model.config().vocab_size) {
    const size_t rows_max = size_t(std::max<int64_t>(2, s.limits().max_tokens));
    logits.resize(2 * size_t(V));
    hidden.resize(rows_max * size_t(d));
    positions.resize(rows_max);
    seq_ids.assign(rows_max, 0);
    rows.resize(rows_max);
  }

  // Main model on tokens at the sequence's next positions; hidden states of every row, logits of
  // the last `want` rows. Does not advance the sequence (the caller keeps what it accepts).
  void main_rows(std::span<const int32_t> tokens, int want) {
    const size_t n = tokens.size();
    seq.reserve(int64_t(n));
    for (size_t i = 0; i < n; ++i) positions[i] = seq.length() + int64_t(i);
    for (int k = 0; k < want; ++k) rows[size_t(k)] = int32_t(n) - want + k;
    const model::SeqBlocks seqs[1] = {seq.blocks()};
    model::ForwardOptions o;
    o.hidden_out = std::span(hidden).first(n * size_t(d));
    m.forward(model::Batch{tokens, std::span(positions).first(n), std::span(seq_ids).first(n), seqs,
                           std::span(rows).first(size_t(want))},
              pool.store(), st, logits, o);
  }

  // MTP rows at the module's next positions: row i pairs hidden row hidden_row0 + i with
  // next_tokens[i]. With `want_logits`, the last row's logits land in logits[0, V).
  void mtp_rows(std::span<const int32_t> next_tokens, size_t hidden_row0, bool want_logits) {
    const size_t n = next_tokens.size();
    mtp.reserve(int64_t(n));
    for (size_t i = 0; i < n; ++i) positions[i] = mtp.length() + int64_t(i);
    rows[0] = int32_t(n) - 1;
    const model::SeqBlocks seqs[1] = {mtp.blocks()};
    m.forward_mtp(
        model::Batch{next_tokens, std::span(positions).first(n), std::span(seq_ids).first(n), seqs,
                     std::span(rows).first(want_logits ? 1 : 0)},
        std::span(hidden).subspan(hidden_row0 * size_t(d), n * size_t(d)), mtp_pool.store(), st,
        logits);
    mtp.advance(next_tokens);
  }

  // A draft from the MTP logits in logits[0, V) (its distribution kept in draft_probs).
  int32_t draft(int64_t position) {
    return rule.draft(std::span(logits).first(size_t(V)), position, draft_probs);
  }

  // The token at the draft's position given the main model's logits row `row`.
  int32_t verify(std::span<const float> row, int32_t draft_token, int64_t position,
                 bool* accepted) {
    return rule.verify(row, draft_token, rule.greedy() ? std::span<const float>() : draft_probs,
                       position, accepted);
  }
};

}  // namespace

GenerateStats generate_mtp(const model::Model& m, KvPool& pool, KvPool& mtp_pool,
                           model::ForwardState& st, Sampler& sampler, const GenerateRequest& req,
                           const TokenCallback& on_token) {
  const model::ModelConfig& c = m.config();
  if (m.weights().mtp.empty())
    fail(ErrorKind::request,
         "speculative decoding with MTP needs the model's MTP module "
         "(load it with LoadOptions::include_mtp)");
  const int64_t P = int64_t(req.prompt.size()), ctx = request_context(c, req);
  if (st.limits().max_tokens < 2)
    fail(ErrorKind::request, "speculative decoding needs a forward state of at least 2 rows");
  GenerateStats stats;
  stats.prompt_tokens = P;
  Spec s(m, pool, mtp_pool, st, sampler);
  sampler.accept_prompt(req.prompt);
  auto emit = [&](int32_t t) { return emit_token(t, req, stats, on_token); };

  // Prefill: the main model over the prompt, and the MTP module over every prompt row whose
  // next token is known (row j pairs h_j with prompt[j + 1]).
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t chunk = st.limits().max_tokens;
  for (int64_t p = 0; p < P; p += chunk) {
    const int64_t n = std::min(chunk, P - p);
    const auto part = std::span(req.prompt).subspan(size_t(p), size_t(n));
    s.main_rows(part, p + n == P ? 1 : 0);
    s.seq.advance(part);
    const int64_t known = std::min(n, P - 1 - p);  // rows with a next prompt token
    if (known > 0)
      s.mtp_rows(std::span(req.prompt).subspan(size_t(p + 1), size_t(known)), 0, false);
  }
  // h_{P-1} stays in the hidden row of the last prompt token: move it to row 0.
  const size_t last_row = size_t((P - 1) % chunk);
  std::copy_n(s.hidden.begin() + int64_t(last_row) * s.d, s.d, s.hidden.begin());
  stats.prefill_seconds = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  if (req.max_new_tokens == 0) return stats;
  int32_t x = sampler.sample(std::span(s.logits).first(size_t(s.V)));
  sampler.accept(x);
  // Invariant at the top of the loop: x (emitted, not yet run) sits at position L; hidden row 0
  // holds h_{L-1}; the MTP cache holds rows [0, L-1).
  bool go = emit(x);
  while (go) {
    const int64_t L = s.seq.length();
    if (L >= ctx) {  // x took the position after the last one: nothing more fits
      stats.stop = StopReason::context;
      break;
    }
    const int32_t one[1] = {x};
    if (L + 1 >= ctx) {  // room to run x, not a draft after it
      s.main_rows(one, 1);
      s.seq.advance(one);
      const int32_t y = sampler.sample(std::span(s.logits).first(size_t(s.V)));
      sampler.accept(y);
      go = emit(y);
      x = y;
      continue;
    }
    s.mtp_rows(one, 0, true);  // MTP row L-1: h_{L-1} with x, predicting position L + 1
    const int32_t dtok = s.draft(L + 1);
    ++stats.drafted;
    const int32_t pair[2] = {x, dtok};
    s.main_rows(pair, 2);  // logits rows: [0] predicts L + 1, [1] predicts L + 2
    bool accepted = false;
    const int32_t y = s.verify(std::span(s.logits).first(size_t(s.V)), dtok, L + 1, &accepted);
    sampler.accept(y);
    if (!accepted) {
      s.seq.advance(one);  // the draft's cache row at L + 1 is overwritten next step
      go = emit(y);        // hidden row 0 is h_L, the MTP cache holds rows [0, L)
      x = y;
      continue;
    }
    ++stats.accepted;
    s.seq.advance(pair);
    if (!emit(y)) break;
    // Both rows were right: the token at L + 2 (<= ctx) comes from row 1's logits.
    const int32_t z = sampler.sample(std::span(s.logits).subspan(size_t(s.V), size_t(s.V)));
    sampler.accept(z);
    const int32_t accepted_draft[1] = {y};
    s.mtp_rows(accepted_draft, 0, false);                        // MTP row L: h_L with the draft
    std::copy_n(s.hidden.begin() + s.d, s.d, s.hidden.begin());  // h_{L+1} to row 0
    go = emit(z);
    x = z;
  }
  stats.decode_seconds = seconds_since(t1);
  return stats;
}

}  // namespace tern::infer
