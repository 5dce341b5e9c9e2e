// Speculative decoding with the MTP module: greedy output is token for token plain greedy
// decoding (any chunk size, any context limit), drafts are counted, and sampled output keeps
// the main model's distribution — the joint distribution of the first two sampled tokens under
// top-k 4 matches the one computed exactly from the main model (chi-square).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "fixtures.h"
#include "infer/speculative.h"

using namespace tern;
using namespace tern::infer;
using tern::test::case_ids;
using tern::test::golden;

namespace {

struct GenRun {
  std::vector<int32_t> tokens;
  GenerateStats stats;
};

GenRun run(const model::Model& m, const std::vector<int32_t>& prompt, int n,
           const SamplingParams& p, bool mtp, int64_t chunk, int64_t ctx = 0) {
  KvPool pool(m.config(), 16, 4, DType::f32);
  KvPool mtp_pool(m.config(), 16, 4, DType::f32, 1);
  model::ForwardState st(m.config(), pool.store().layout, {chunk, 0, model::MlaMode::absorbed});
  Sampler sampler(p, int32_t(m.config().vocab_size), 11);
  GenRun r;
  const GenerateRequest req{prompt, n, {}, ctx};
  auto keep = [&](int32_t t) {
    r.tokens.push_back(t);
    return true;
  };
  r.stats = mtp ? generate_mtp(m, pool, mtp_pool, st, sampler, req, keep)
                : generate(m, pool, st, sampler, req, keep);
  return r;
}

}  // namespace

TEST(Speculative, GreedyEqualsPlainGreedy) {
  SamplingParams greedy;
  greedy.temperature = 0;
  for (const char* name : {"v3_tiny", "v3_fp8"}) {
    const model::Model m = model::Model::load(golden(name), {/*include_mtp=*/true});
    for (size_t plen : {1u, 5u, 9u})
      for (int64_t chunk : {2, 4}) {
        const auto prompt = case_ids(name, plen);
        const GenRun plain = run(m, prompt, 12, greedy, false, chunk);
        const GenRun spec = run(m, prompt, 12, greedy, true, chunk);
        EXPECT_EQ(spec.tokens, plain.tokens) << name << " prompt " << plen << " chunk " << chunk;
        EXPECT_GT(spec.stats.drafted, 0);
        EXPECT_LE(spec.stats.accepted, spec.stats.drafted);
        EXPECT_EQ(spec.stats.stop, plain.stats.stop);
      }
    // Near the context end both stop after the same tokens, for the same reason.
    const auto prompt = case_ids(name, 6);
    for (int64_t ctx : {7, 8, 11}) {
      const GenRun plain = run(m, prompt, 50, greedy, false, 4, ctx);
      const GenRun spec = run(m, prompt, 50, greedy, true, 4, ctx);
      EXPECT_EQ(spec.tokens, plain.tokens) << name << " ctx " << ctx;
      EXPECT_EQ(spec.stats.stop, StopReason::context);
    }
  }
}

TEST(Speculative, RefusesWithoutTheMtpModule) {
  const model::Model m = model::Model::load(golden("v3_tiny"));
  SamplingParams greedy;
  greedy.temperature = 0;
  EXPECT_THROW(run(m, case_ids("v3_tiny", 4), 3, greedy, true, 4), Error);
}

TEST(Speculative, SampledOutputKeepsTheMainModelsDistribution) {
  const model::Model m = model::Model::load(golden("v3_tiny"), {/*include_mtp=*/true});
  const auto prompt = case_ids("v3_tiny", 5);
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 4;
  const tern::test::TwoTokenCells d = tern::test::two_token_distribution(m, prompt, p);
  ASSERT_EQ(d.cells.size(), 16u) << "top-k 4 at both steps";
  const auto [chi2, drafted, accepted] = tern::test::two_token_chi_square(
      d, 1200, p, [&](const SamplingParams& sp, GenerateStats* stats) {
        const GenRun r = run(m, prompt, 2, sp, true, 8);
        *stats = r.stats;
        return r.tokens;
      });
  // 15 degrees of freedom: P(chi2 > 37.7) = 0.001 if the distributions agree.
  EXPECT_LT(chi2, 37.7) << "accepted " << accepted << " of " << drafted << " drafts";
  EXPECT_GT(drafted, 0);
}

TEST(Speculative, SampledOutputKeepsTheDistributionWhenDraftsAreAccepted) {
  // A high temperature over the whole vocabulary makes the random MTP module's drafts overlap
  // the main model's distribution, so both the accept and the residual paths run. The second
  // token's distribution (binned by id mod 8) must still be the main model's.
  const model::Model m = model::Model::load(golden("v3_tiny"), {/*include_mtp=*/true});
  const int64_t V = m.config().vocab_size;
  const auto prompt = case_ids("v3_tiny", 5);
  SamplingParams p;
  p.temperature = 2.5f;
  Sampler probe(p, int32_t(V), 1);
  auto main_probs = [&](const std::vector<int32_t>& seq) {
    std::vector<float> logits(seq.size() * size_t(V));
    model::KvCache cache = m.make_cache(int64_t(seq.size()));
    m.forward(seq, cache, logits);
    return probe.probabilities(std::span(logits).last(size_t(V)));
  };
  const std::vector<float> px = main_probs(prompt);
  std::vector<double> expected(8, 0.0);
  for (int32_t x = 0; x < V; ++x) {
    std::vector<int32_t> seq = prompt;
    seq.push_back(x);
    const std::vector<float> py = main_probs(seq);
    for (int32_t y = 0; y < V; ++y)
      expected[size_t(y % 8)] += double(px[size_t(x)]) * py[size_t(y)];
  }
  const int draws = 1200;
  std::vector<double> count(8, 0);
  int64_t drafted = 0, accepted = 0;
  for (int seed = 0; seed < draws; ++seed) {
    p.seed = uint64_t(seed);
    const GenRun r = run(m, prompt, 2, p, true, 8);
    ASSERT_EQ(r.tokens.size(), 2u);
    drafted += r.stats.drafted;
    accepted += r.stats.accepted;
    count[size_t(r.tokens[1] % 8)] += 1;
  }
  const double chi2 = tern::test::chi_square(count, expected, draws);
  // 7 degrees of freedom: P(chi2 > 24.3) = 0.001 if the distributions agree.
  EXPECT_LT(chi2, 24.3) << "accepted " << accepted << " of " << drafted << " drafts";
  EXPECT_GT(accepted, 0) << "some drafts must be accepted";
  EXPECT_LT(accepted, drafted) << "and some rejected, so both paths ran";
}
