// Routing variants on hand-made scores where the right experts can be worked out by hand
// (spec §7.2, §7.3): group limits, the selection-only bias, renormalisation and scaling.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/config.h"
#include "model/router.h"

using namespace tern::model;

namespace {

ModelConfig base(Arch arch, TopkMethod m, ScoringFunc f, int64_t E, int64_t K, int64_t G,
                 int64_t Gk) {
  ModelConfig c;
  c.arch = arch;
  c.topk_method = m;
  c.scoring_func = f;
  c.n_routed_experts = E;
  c.num_experts_per_tok = K;
  c.n_group = G;
  c.topk_group = Gk;
  return c;
}

float logit_of(float p) {
  return std::log(p / (1 - p));
}  // inverse sigmoid

struct Routed {
  std::vector<int32_t> idx;
  std::vector<float> w;
};

Routed route(const ModelConfig& c, const std::vector<float>& logits,
             const std::vector<float>* bias = nullptr) {
  std::vector<float> scratch(static_cast<size_t>(3 * c.n_routed_experts));
  Routed r{std::vector<int32_t>(size_t(c.num_experts_per_tok)),
           std::vector<float>(size_t(c.num_experts_per_tok))};
  route_token(c, logits.data(), bias ? bias->data() : nullptr, scratch.data(), r.idx.data(),
              r.w.data());
  return r;
}

}  // namespace

TEST(Router, NoauxTcUsesTop2GroupSumsBiasForSelectionOnlyThenNormalisesAndScales) {
  // 8 experts in 4 groups of 2, keep 2 groups, top-2. Sigmoid scores by expert:
  //   group 0: 0.9, 0.1 (sum 1.0)   group 1: 0.6, 0.6 (sum 1.2)
  //   group 2: 0.5, 0.55 (sum 1.05) group 3: 0.2, 0.2 (sum 0.4)
  // Kept groups: 1 and 2 — so expert 0 (0.9, the single best) is excluded by the group limit.
  ModelConfig c = base(Arch::deepseek_v3, TopkMethod::noaux_tc, ScoringFunc::sigmoid, 8, 2, 4, 2);
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  const std::vector<float> p = {0.9f, 0.1f, 0.6f, 0.6f, 0.5f, 0.55f, 0.2f, 0.2f};
  std::vector<float> logits;
  for (float v : p) logits.push_back(logit_of(v));
  Routed r = route(c, logits);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{2, 3}));  // tie 0.6/0.6 -> lower id first
  EXPECT_NEAR(r.w[0], 2.5f * 0.5f, 1e-6f);
  EXPECT_NEAR(r.w[1], 2.5f * 0.5f, 1e-6f);
  // A bias lifts expert 4 above experts 2 and 3 for selection; its weight stays its unbiased score.
  std::vector<float> bias(8, 0.0f);
  bias[4] = 0.2f;
  r = route(c, logits, &bias);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{4, 2}));
  EXPECT_NEAR(r.w[0], 2.5f * 0.5f / 1.1f, 1e-6f);
  EXPECT_NEAR(r.w[1], 2.5f * 0.6f / 1.1f, 1e-6f);
}

TEST(Router, GroupLimitedGreedyScoresGroupsByTheirMax) {
  // Softmax over 4 experts in 2 groups, keep 1 group, top-2. Group 0 = {0.40, 0.05},
  // group 1 = {0.30, 0.25}: by max, group 0 wins (0.40 > 0.30) although group 1 sums higher.
  ModelConfig c =
      base(Arch::deepseek_v2, TopkMethod::group_limited_greedy, ScoringFunc::softmax, 4, 2, 2, 1);
  c.routed_scaling_factor = 16.0;  // V2: un-normalised weights are scaled
  const std::vector<float> p = {0.40f, 0.05f, 0.30f, 0.25f};
  std::vector<float> logits;
  for (float v : p) logits.push_back(std::log(v));
  Routed r = route(c, logits);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(r.w[0], 16.0f * 0.40f, 1e-5f);
  EXPECT_NEAR(r.w[1], 16.0f * 0.05f, 1e-5f);
}

TEST(Router, GreedyIgnoresGroupsAndV2NormalisedWeightsAreNotScaled) {
  ModelConfig c = base(Arch::deepseek_v2, TopkMethod::greedy, ScoringFunc::softmax, 4, 2, 2, 1);
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 16.0;
  const std::vector<float> p = {0.40f, 0.05f, 0.30f, 0.25f};
  std::vector<float> logits;
  for (float v : p) logits.push_back(std::log(v));
  Routed r = route(c, logits);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{0, 2}));
  EXPECT_NEAR(r.w[0], 0.40f / 0.70f, 1e-6f);
  EXPECT_NEAR(r.w[1], 0.30f / 0.70f, 1e-6f);
}

TEST(Router, FewerEligibleExpertsThanKStillPicksDistinctExperts) {
  // Every logit -inf-like after masking: the picks must still be K distinct ids.
  ModelConfig c = base(Arch::deepseek_v3, TopkMethod::noaux_tc, ScoringFunc::sigmoid, 4, 3, 2, 1);
  const std::vector<float> logits = {0.0f, 0.0f, 0.0f, 0.0f};
  Routed r = route(c, logits);
  EXPECT_NE(r.idx[0], r.idx[1]);
  EXPECT_NE(r.idx[1], r.idx[2]);
  EXPECT_NE(r.idx[0], r.idx[2]);
}
