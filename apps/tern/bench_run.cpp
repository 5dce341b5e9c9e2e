// The bench loop mirrors infer::generate's prefill (chunks, logits for the last row only) but
// decodes all sequences in one Model::forward per step, which is what batching buys; greedy
// argmax keeps the sampler's cost out of the figures.
#include "apps/tern/bench_run.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "infer/kv_pool.h"

namespace tern::app {
namespace {

// No RAPL: the same assumed board power as `tern plan hardware cpu`.
constexpr double kAssumedWatts = 150;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int32_t argmax(const float* row, int64_t n) {
  return int32_t(std::max_element(row, row + n) - row);
}

std::vector<int32_t> random_prompt(const BenchParams& p, int64_t seq, int64_t vocab) {
  std::vector<int32_t> ids(size_t(p.prompt));
  const uint64_t stream = rng::stream_id("tern bench prompt") + uint64_t(seq);
  for (int64_t i = 0; i < p.prompt; ++i)
    ids[size_t(i)] = int32_t(rng::word(p.seed, stream, uint64_t(i)) % uint64_t(vocab));
  return ids;
}

// Prefills one sequence in chunks; its last row's logits land in `logits`.
void prefill(const model::Model& m, infer::KvPool& pool, model::ForwardState& st,
             infer::PooledSequence& seq, const std::vector<int32_t>& prompt,
             std::vector<int64_t>& positions, const std::vector<int32_t>& seq_ids,
             std::span<float> logits) {
  const int64_t chunk = st.limits().max_tokens, P = int64_t(prompt.size());
  for (int64_t p = 0; p < P; p += chunk) {
    const int64_t n = std::min(chunk, P - p);
    const std::span<const int32_t> toks = std::span(prompt).subspan(size_t(p), size_t(n));
    seq.reserve(n);
    for (int64_t i = 0; i < n; ++i) positions[size_t(i)] = seq.length() + i;
    const model::SeqBlocks seqs[1] = {seq.blocks()};
    const int32_t last[1] = {int32_t(n) - 1};
    const bool want = p + n == P;
    const model::Batch b{toks, std::span<const int64_t>(positions).first(size_t(n)),
                         std::span(seq_ids).first(size_t(n)), seqs,
                         want ? std::span<const int32_t>(last) : std::span<const int32_t>()};
    m.forward(b, pool.store(), st, logits);
    seq.advance(toks);
  }
}

}  // namespace

BenchTimes run_bench(const model::Model& m, const BenchParams& p) {
  const model::ModelConfig& c = m.config();
  const int64_t ctx = p.ctx > 0 ? p.ctx : p.prompt + p.gen;
  if (ctx > c.max_position_embeddings)
    fail(ErrorKind::request, "a context of " + std::to_string(ctx) +
                                 " positions (-p + -n, or --ctx) exceeds the model's " +
                                 std::to_string(c.max_position_embeddings));
  if (p.prompt + p.gen > ctx)
    fail(ErrorKind::request, "-p " + std::to_string(p.prompt) + " plus -n " +
                                 std::to_string(p.gen) + " exceeds --ctx " + std::to_string(ctx));
  const int64_t B = p.batch, V = c.vocab_size;
  const int64_t blocks_per_seq = (ctx + kBenchBlockTokens - 1) / kBenchBlockTokens;
  infer::KvPool pool(c, B * blocks_per_seq, kBenchBlockTokens, p.kv_dtype);
  const int64_t rows = std::max(std::min(p.chunk, p.prompt), B);
  model::ForwardState st(c, pool.store().layout, {rows, 0, model::MlaMode::absorbed, !p.exact});

  std::vector<float> logits(static_cast<size_t>(B * V));
  std::vector<int64_t> positions(static_cast<size_t>(rows));
  std::vector<int32_t> seq_ids(static_cast<size_t>(rows), 0), tokens(static_cast<size_t>(B));
  std::deque<infer::PooledSequence> seqs;  // deque: sequences never move once made
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t s = 0; s < B; ++s) {
    seqs.emplace_back(pool);
    prompts.push_back(random_prompt(p, s, V));
  }

  BenchTimes t;
  account::EnergyMeter meter;
  meter.start();
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < B; ++s) {
    prefill(m, pool, st, seqs[size_t(s)], prompts[size_t(s)], positions, seq_ids,
            std::span(logits).subspan(size_t(s * V), size_t(V)));
    tokens[size_t(s)] = argmax(logits.data() + s * V, V);
  }
  t.prefill_s = seconds_since(t0);
  t.prefill_energy = meter.stop(kAssumedWatts, 1, 1.0);
  t.ttft_s = t.prefill_s / double(B);

  // Decode: row s is sequence s's next token, all B rows in one forward.
  std::vector<int32_t> ids(static_cast<size_t>(B)), wanted(static_cast<size_t>(B));
  std::vector<model::SeqBlocks> tables(static_cast<size_t>(B));
  for (int64_t s = 0; s < B; ++s) ids[size_t(s)] = wanted[size_t(s)] = int32_t(s);
  meter.start();
  const auto t1 = Clock::now();
  for (int64_t step = 0; step < p.gen; ++step) {
    for (int64_t s = 0; s < B; ++s) {
      infer::PooledSequence& q = seqs[size_t(s)];
      q.reserve(1);
      positions[size_t(s)] = q.length();
      tables[size_t(s)] = q.blocks();
    }
    const model::Batch b{tokens, std::span<const int64_t>(positions).first(size_t(B)), ids, tables,
                         wanted};
    m.forward(b, pool.store(), st, logits);
    for (int64_t s = 0; s < B; ++s) {
      seqs[size_t(s)].advance(std::span<const int32_t>(tokens).subspan(size_t(s), 1));
      tokens[size_t(s)] = argmax(logits.data() + s * V, V);
    }
  }
  t.decode_s = seconds_since(t1);
  t.decode_energy = meter.stop(kAssumedWatts, 1, 1.0);
  return t;
}

}  // namespace tern::app
