// Prompt-lookup speculative decoding: drafts come from the latest earlier match of the longest
// suffix; greedy output is plain greedy decoding token for token; sampled output keeps the main
// model's exact distribution (chi-square over the first two tokens under top-k 4).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "fixtures.h"
#include "infer/lookup.h"

using namespace tern;
using namespace tern::infer;
using tern::test::case_ids;
using tern::test::golden;

namespace {

struct LookupRun {
  std::vector<int32_t> tokens;
  GenerateStats stats;
};

LookupRun run(const model::Model& m, const std::vector<int32_t>& prompt, int n,
              const SamplingParams& p, int64_t lookup, int64_t ctx = 0) {
  KvPool pool(m.config(), 32, 4, DType::f32);
  model::ForwardState st(m.config(), pool.store().layout, {8, 0, model::MlaMode::absorbed});
  Sampler sampler(p, int32_t(m.config().vocab_size), 5);
  LookupRun r;
  const GenerateRequest req{prompt, n, {}, ctx};
  auto keep = [&](int32_t t) {
    r.tokens.push_back(t);
    return true;
  };
  r.stats = lookup > 0 ? generate_lookup(m, pool, st, sampler, req, lookup, keep)
                       : generate(m, pool, st, sampler, req, keep);
  return r;
}

}  // namespace

TEST(Lookup, DraftsFollowTheLatestMatchOfTheLongestSuffix) {
  const std::vector<int32_t> h = {1, 2, 3, 4, 1, 2};
  EXPECT_EQ(lookup_draft(h, 3), (std::vector<int32_t>{3, 4, 1}));
  EXPECT_EQ(lookup_draft(h, 1), (std::vector<int32_t>{3}));
  // [7, 2] is new, so the single token 2 matches: its latest earlier occurrence wins.
  const std::vector<int32_t> g = {2, 5, 9, 2, 6, 7, 2};
  EXPECT_EQ(lookup_draft(g, 2), (std::vector<int32_t>{6, 7}));
  const std::vector<int32_t> none = {1, 2, 3};
  EXPECT_TRUE(lookup_draft(none, 4).empty());
  EXPECT_TRUE(lookup_draft(std::vector<int32_t>{5}, 4).empty());
  // A continuation that reaches the end is cut there.
  const std::vector<int32_t> tail = {4, 8, 4};
  EXPECT_EQ(lookup_draft(tail, 5), (std::vector<int32_t>{8, 4}));
}

TEST(Lookup, GreedyEqualsPlainGreedy) {
  SamplingParams greedy;
  greedy.temperature = 0;
  // A repetition "penalty" below 1 favours tokens already seen, so these random models repeat
  // themselves and lookups find drafts (the same rule applies to the plain run).
  greedy.repetition_penalty = 0.3f;
  greedy.penalty_last_n = -1;
  for (const char* name : {"qwen2_tiny", "v3_tiny"}) {
    const model::Model m = model::Model::load(golden(name));
    std::vector<int32_t> prompt = case_ids(name);
    prompt.resize(8);
    prompt.insert(prompt.end(), prompt.begin(), prompt.begin() + 6);  // repeats, so drafts exist
    int64_t drafted = 0;
    for (int64_t k : {1, 3, 7}) {
      const LookupRun plain = run(m, prompt, 12, greedy, 0);
      const LookupRun fast = run(m, prompt, 12, greedy, k);
      EXPECT_EQ(fast.tokens, plain.tokens) << name << " lookup " << k;
      EXPECT_LE(fast.stats.accepted, fast.stats.drafted);
      drafted += fast.stats.drafted;
    }
    EXPECT_GT(drafted, 0) << name;
    for (int64_t ctx : {16, 19}) {  // drafts are cut at the context end
      const LookupRun plain = run(m, prompt, 50, greedy, 0, ctx);
      const LookupRun fast = run(m, prompt, 50, greedy, 4, ctx);
      EXPECT_EQ(fast.tokens, plain.tokens) << name << " ctx " << ctx;
      EXPECT_EQ(fast.stats.stop, StopReason::context);
    }
  }
}

TEST(Lookup, SampledOutputKeepsTheMainModelsDistribution) {
  const model::Model m = model::Model::load(golden("qwen2_tiny"));
  std::vector<int32_t> prompt = case_ids("qwen2_tiny");
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 4;
  p.repetition_penalty = 0.3f;  // favours repeats, so drafts exist and get accepted
  p.penalty_last_n = -1;
  const tern::test::TwoTokenCells d = tern::test::two_token_distribution(m, prompt, p);
  ASSERT_EQ(d.cells.size(), 16u);
  const auto [chi2, drafted, accepted] = tern::test::two_token_chi_square(
      d, 1200, p, [&](const SamplingParams& sp, GenerateStats* stats) {
        const LookupRun r = run(m, prompt, 2, sp, 3);
        *stats = r.stats;
        return r.tokens;
      });
  // 15 degrees of freedom: P(chi2 > 37.7) = 0.001 if the distributions agree.
  EXPECT_LT(chi2, 37.7) << "accepted " << accepted << " of " << drafted << " drafted tokens";
  EXPECT_GT(accepted, 0) << "some drafts must be accepted";
  EXPECT_LT(accepted, drafted) << "and some rejected, so both paths ran";
}

TEST(Lookup, BadSettingsAreRefused) {
  const model::Model m = model::Model::load(golden("qwen2_tiny"));
  SamplingParams greedy;
  greedy.temperature = 0;
  EXPECT_THROW(run(m, {1, 2}, 3, greedy, 8), Error) << "8 drafts need 9 rows; the state has 8";
}
