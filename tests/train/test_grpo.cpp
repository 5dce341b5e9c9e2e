// GRPO (train/grpo_objective.h, train/grpo_step.h): advantages, the clipped-ratio branches and
// the k3 KL on hand values and finite differences, and the whole loss and every parameter's
// gradient on the tiny DeepSeek-V3 model against the independent PyTorch reference
// (tests/reference/make_grpo_golden.py → tests/golden/grpo_tiny_v3, float64). The reference
// moves the old policy's log-probabilities so some tokens clip and puts the reference policy
// off the current one, so all three parts of the objective carry gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "model/grad/f32_weights.h"
#include "tests/train/golden_params.h"
#include "train/grpo_step.h"

using namespace tern;
using namespace tern::train;

namespace {

std::string golden(const std::string& name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}

}  // namespace

TEST(GrpoObjective, AdvantagesAreNormalisedWithinTheGroup) {
  const std::vector<double> a = group_advantages({1, 0, 0, 1}, false);
  // mean 0.5, sample std sqrt(1/3)
  const double z = 0.5 / (std::sqrt(1.0 / 3.0) + 1e-4);
  EXPECT_NEAR(a[0], z, 1e-12);
  EXPECT_NEAR(a[1], -z, 1e-12);
  const std::vector<double> dr = group_advantages({1, 0, 0, 1}, true);
  EXPECT_NEAR(dr[0], 0.5, 1e-12);
  EXPECT_NEAR(dr[2], -0.5, 1e-12);
  for (double x : group_advantages({0.3, 0.3, 0.3}, false)) EXPECT_EQ(x, 0.0);
  EXPECT_EQ(group_advantages({1.0}, false), std::vector<double>{0.0});
}

TEST(GrpoObjective, ClipsOnlyWhereTheRatioLeftTheRegionTheAdvantagePushesTowards) {
  const GrpoSettings s{0.2, 0.0, false};
  const double up = std::log(1.5), down = std::log(0.5);
  // A > 0 and ρ > 1 + ε: held at (1 + ε)A, no gradient.
  TokenObjective t = grpo_token(up, 0, 0, 2.0, s);
  EXPECT_TRUE(t.clipped);
  EXPECT_NEAR(t.value, 1.2 * 2.0, 1e-12);
  EXPECT_EQ(t.dvalue_dlogp, 0.0);
  // A > 0 and ρ < 1 − ε: the min keeps ρA, whose gradient flows.
  t = grpo_token(down, 0, 0, 2.0, s);
  EXPECT_FALSE(t.clipped);
  EXPECT_NEAR(t.value, 1.0, 1e-12);
  EXPECT_NEAR(t.dvalue_dlogp, 1.0, 1e-12);
  // A < 0 mirrors it.
  t = grpo_token(down, 0, 0, -1.0, s);
  EXPECT_TRUE(t.clipped);
  EXPECT_NEAR(t.value, -0.8, 1e-12);
  EXPECT_EQ(t.dvalue_dlogp, 0.0);
  t = grpo_token(up, 0, 0, -1.0, s);
  EXPECT_FALSE(t.clipped);
  EXPECT_NEAR(t.dvalue_dlogp, -1.5, 1e-12);
}

TEST(GrpoObjective, KlIsK3AndItsDerivativeMatchesFiniteDifferences) {
  const GrpoSettings s{0.2, 0.5, false};
  EXPECT_NEAR(grpo_token(-1.0, -1.0, -1.0, 0.0, s).kl, 0.0, 1e-15);
  const double lp = -1.3, ref = -0.9;
  const TokenObjective t = grpo_token(lp, -1.25, ref, 0.7, s);
  EXPECT_NEAR(t.kl, std::exp(ref - lp) - (ref - lp) - 1, 1e-12);
  EXPECT_GT(t.kl, 0);
  const double h = 1e-6;
  const double fd = (grpo_token(lp + h, -1.25, ref, 0.7, s).value -
                     grpo_token(lp - h, -1.25, ref, 0.7, s).value) /
                    (2 * h);
  EXPECT_NEAR(t.dvalue_dlogp, fd, 1e-8);
}

TEST(GrpoObjective, TokenWeightsAverageOverResponsesAndTheirLengths) {
  EXPECT_DOUBLE_EQ(grpo_token_weight(4, 10, 256, false), 1.0 / 40);
  EXPECT_DOUBLE_EQ(grpo_token_weight(4, 10, 256, true), 1.0 / 1024);
}

TEST(GrpoStep, PacksEachResponseAfterItsPromptAndRefusesOneTooLong) {
  model::ModelConfig c = model::ModelConfig::from_file(golden("train_tiny_v3") + "/config.json");
  RolloutBatch rb(c, 2, 8);
  std::vector<Rollout> rs(1);
  rs[0].prompt = {1, 2, 3};
  rs[0].completion = {4, 5};
  rb.pack(rs, 0);
  EXPECT_EQ(rb.at(1), std::make_pair(int64_t(-1), int64_t(-1)));  // predicts a prompt token
  EXPECT_EQ(rb.at(2), std::make_pair(int64_t(0), int64_t(0)));    // predicts 4
  EXPECT_EQ(rb.at(3), std::make_pair(int64_t(0), int64_t(1)));    // predicts 5
  EXPECT_EQ(rb.at(4).first, -1);
  for (int64_t row = 8; row < 16; ++row) EXPECT_EQ(rb.at(row).first, -1) << "an empty window";
  const model::grad::TrainBatch b = rb.batch();
  const int64_t S = model::grad::window_tokens(c, 8);
  EXPECT_EQ(b.tokens[4], 5);
  EXPECT_NE(b.docs[5], b.docs[4]) << "nothing predicts across the end of the response";
  EXPECT_NE(b.docs[S + 1], b.docs[S]);
  rs[0].completion.assign(7, 1);
  EXPECT_THROW(rb.pack(rs, 0), Error);
}

namespace {

struct GrpoCase {
  model::ModelConfig c;
  model::ModelWeights w, g;
  nlohmann::json cs;
  std::vector<Rollout> rs;
};

GrpoCase load_case() {
  const std::string src = golden("train_tiny_v3");
  GrpoCase f{model::ModelConfig::from_file(src + "/config.json"), {}, {}, {}, {}};
  std::ifstream in(golden("grpo_tiny_v3") + "/case.json");
  f.cs = nlohmann::json::parse(in);
  f.w = model::grad::make_f32_weights(f.c);
  f.g = model::grad::make_f32_weights(f.c);
  test::load_golden_params(f.c, f.w, src + "/init.safetensors");
  const auto batch = formats::Checkpoint::open(src + "/batch.safetensors");
  const int32_t* tok = batch.get("tokens").data_as<const int32_t>();  // step 0 first
  const int64_t S = model::grad::window_tokens(f.c, 16);
  for (int b = 0; b < 2; ++b) {
    Rollout r;
    const int64_t p = f.cs["prompt_tokens"][b], n = f.cs["completion_tokens"][b];
    r.prompt.assign(tok + b * S, tok + b * S + p);
    r.completion.assign(tok + b * S + p, tok + b * S + p + n);
    r.reward = f.cs["rewards"][b];
    r.old_logp = f.cs["old_logp"][b].get<std::vector<double>>();
    r.ref_logp = f.cs["ref_logp"][b].get<std::vector<double>>();
    f.rs.push_back(std::move(r));
  }
  return f;
}

GrpoStepOptions options(const nlohmann::json& cs, bool dr) {
  GrpoStepOptions o;
  o.settings = {cs["clip"].get<double>(), cs["kl"].get<double>(), dr};
  o.n_responses = 2;
  o.max_tokens = cs["max_tokens_dr"];
  return o;
}

}  // namespace

TEST(GrpoGolden, LogProbabilitiesLossAndEveryGradientMatchPyTorch) {
  GrpoCase f = load_case();
  const std::vector<double> adv = group_advantages({f.rs[0].reward, f.rs[1].reward}, false);
  for (int b = 0; b < 2; ++b) {
    EXPECT_NEAR(adv[size_t(b)], f.cs["advantages"][b].get<double>(), 1e-12);
    f.rs[size_t(b)].advantage = adv[size_t(b)];
  }
  ThreadPool pool(2);
  model::grad::ModelGrad net(f.c, 2, 16);
  RolloutBatch rb(f.c, 2, 16);
  rb.pack(f.rs, 0);

  // The current policy's log-probabilities, recorded as an "old policy" into a copy.
  std::vector<Rollout> probe = f.rs;
  record_logprobs(net, f.w, rb, probe, LogpSlot::old_policy, pool);
  for (int b = 0; b < 2; ++b) {
    const auto want = f.cs["logp"][b].get<std::vector<double>>();
    ASSERT_EQ(probe[size_t(b)].old_logp.size(), want.size());
    for (size_t j = 0; j < want.size(); ++j)
      EXPECT_NEAR(probe[size_t(b)].old_logp[j], want[j], 1e-5) << b << "/" << j;
  }

  const GrpoTotals t = grpo_backward(net, f.w, f.g, rb, f.rs, options(f.cs, false), pool);
  // f32 log-probabilities are within ~1e-6 of the float64 ones; the loss averages them.
  EXPECT_NEAR(-t.objective, f.cs["loss"].get<double>(), 2e-6);
  EXPECT_EQ(t.clipped, f.cs["clipped"].get<int64_t>());
  EXPECT_EQ(t.tokens, 22);
  EXPECT_NEAR(t.kl_sum / double(t.tokens), f.cs["kl_mean"].get<double>(), 2e-6);

  const test::GradCompare g =
      test::expect_grads_match(f.c, f.g, golden("grpo_tiny_v3") + "/grads.safetensors");
  const int compared = g.compared, nonzero = g.nonzero;
  EXPECT_GT(compared, 100);
  EXPECT_GT(nonzero, 50) << "the main model's parameters all get gradient";
}

TEST(GrpoGolden, DrGrpoLossMatchesPyTorch) {
  GrpoCase f = load_case();
  const std::vector<double> adv = group_advantages({f.rs[0].reward, f.rs[1].reward}, true);
  for (int b = 0; b < 2; ++b) f.rs[size_t(b)].advantage = adv[size_t(b)];
  ThreadPool pool(2);
  model::grad::ModelGrad net(f.c, 2, 16);
  RolloutBatch rb(f.c, 2, 16);
  rb.pack(f.rs, 0);
  const GrpoTotals t = grpo_backward(net, f.w, f.g, rb, f.rs, options(f.cs, true), pool);
  EXPECT_NEAR(-t.objective, f.cs["dr_loss"].get<double>(), 2e-6);
}

TEST(GrpoGolden, OnTheFirstPassTheRatioIsOneAndNothingClips) {
  GrpoCase f = load_case();
  f.rs[0].advantage = 1.0, f.rs[1].advantage = -1.0;
  ThreadPool pool(2);
  model::grad::ModelGrad net(f.c, 2, 16);
  RolloutBatch rb(f.c, 2, 16);
  rb.pack(f.rs, 0);
  GrpoStepOptions o = options(f.cs, false);
  o.record_old = true;
  o.use_ref = false;
  const GrpoTotals t = grpo_backward(net, f.w, f.g, rb, f.rs, o, pool);
  EXPECT_EQ(t.clipped, 0);
  EXPECT_EQ(t.kl_sum, 0.0);
  // J = Σ_i 1/(G|o_i|) Σ_t A_i = (1 − 1) / 2 = 0 with ratios of exactly one.
  EXPECT_NEAR(t.objective, 0.0, 1e-12);
  for (int b = 0; b < 2; ++b)
    for (size_t j = 0; j < f.rs[size_t(b)].old_logp.size(); ++j)
      EXPECT_NEAR(f.rs[size_t(b)].old_logp[j], f.cs["logp"][b][j].get<double>(), 1e-5);
}
