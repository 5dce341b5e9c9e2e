// Penalties on hand-worked histories: the repetition window (prompt included, oldest tokens
// leave it), OpenAI presence/frequency over generated tokens only, and their effect on greedy.
#include <gtest/gtest.h>

#include <vector>

#include "infer/sampler.h"
#include "infer/transforms.h"

using namespace tern::infer;

namespace {

TokenHistory history(int32_t window, const std::vector<int32_t>& prompt,
                     const std::vector<int32_t>& generated) {
  TokenHistory h(window);
  for (int32_t t : prompt) h.add_prompt(t);
  for (int32_t t : generated) h.add_generated(t);
  return h;
}

}  // namespace

TEST(TokenHistory, WindowEvictsOldestAndCountsGeneratedOnly) {
  const TokenHistory h = history(3, {1, 2, 3, 1}, {4, 4});
  // window holds the last three of 1 2 3 1 4 4 -> {1, 4, 4}
  EXPECT_EQ(h.window_counts(), (TokenHistory::Counts{{1, 1}, {4, 2}}));
  EXPECT_EQ(h.generated_counts(), (TokenHistory::Counts{{4, 2}}));
  EXPECT_EQ(h.generated(), 2u);
}

TEST(TokenHistory, UnboundedAndDisabledWindows) {
  EXPECT_EQ(history(-1, {1, 2, 1}, {2}).window_counts(), (TokenHistory::Counts{{1, 2}, {2, 2}}));
  const TokenHistory off = history(0, {1, 2}, {3});
  EXPECT_TRUE(off.window_counts().empty());
  EXPECT_EQ(off.generated_counts(), (TokenHistory::Counts{{3, 1}}));  // OpenAI ones still count
}

TEST(Penalties, HandWorkedCounts) {
  // prompt [0, 1], generated [2, 2, 1]; whole-history window.
  // repetition 2 over {0, 1, 2}: 2 -> 1, -2 -> -4, 1 -> 0.5
  // then presence 0.5 + frequency 0.25 * count over generated {2: 2, 1: 1}:
  //   id 2: 0.5 - 0.5 - 0.5 = -0.5; id 1: -4 - 0.5 - 0.25 = -4.75
  std::vector<float> row = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  apply_penalties(row, history(-1, {0, 1}, {2, 2, 1}), p);
  EXPECT_EQ(row, (std::vector<float>{1.0f, -4.75f, -0.5f, 0.5f, 3.0f}));
}

TEST(Penalties, RepetitionOnlyInsideWindow) {
  std::vector<float> row = {2.0f, 2.0f, 2.0f, 0.0f};
  SamplingParams p;
  p.repetition_penalty = 4.0f;
  apply_penalties(row, history(2, {0, 1, 2, 3}, {}), p);         // window {2, 3}
  EXPECT_EQ(row, (std::vector<float>{2.0f, 2.0f, 0.5f, 0.0f}));  // zero stays zero
}

TEST(Penalties, NeutralParamsLeaveLogitsAlone) {
  std::vector<float> row = {2.0f, -1.0f};
  apply_penalties(row, history(-1, {0, 1}, {0, 1}), SamplingParams{});
  EXPECT_EQ(row, (std::vector<float>{2.0f, -1.0f}));
}

TEST(Penalties, SteerGreedyThroughSampler) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 0.2f;
  const std::vector<float> logits = {5.0f, 4.9f, 0.0f};
  Sampler s(p, 3, 0);
  const std::vector<int32_t> prompt = {0, 0, 0};
  s.accept_prompt(prompt);
  EXPECT_EQ(s.sample(logits), 0) << "prompt tokens do not count for presence";
  s.accept(0);
  EXPECT_EQ(s.sample(logits), 1) << "a generated token does";

  SamplingParams r;
  r.temperature = 0.0f;
  r.repetition_penalty = 1.1f;  // 5 / 1.1 = 4.545 < 4.9
  Sampler rs(r, 3, 0);
  rs.accept_prompt(prompt);
  EXPECT_EQ(rs.sample(logits), 1) << "prompt tokens feed the repetition window";
}

TEST(Penalties, BiasAppliesBeforeGreedy) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{0, -100.0f}};
  Sampler s(p, 3, 0);
  EXPECT_EQ(s.sample(std::vector<float>{5.0f, 4.9f, 0.0f}), 1);
}
