// SamplingParams::validate: every rule refuses its out-of-range values with a request error
// that names the parameter, and accepts the documented boundary values.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "infer/sampler.h"
#include "infer/sampling_params.h"

using tern::Error;
using tern::ErrorKind;
using tern::infer::Sampler;
using tern::infer::SamplingParams;

namespace {

struct Bad {
  const char* name;
  std::function<void(SamplingParams&)> set;
};

void expect_refused(const SamplingParams& p, const std::string& name) {
  try {
    p.validate();
    ADD_FAILURE() << name << " was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
    EXPECT_NE(std::string(e.what()).find("'" + name + "'"), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(SamplingParams, DefaultsAndBoundariesAreValid) {
  SamplingParams p;
  EXPECT_NO_THROW(p.validate());
  p.temperature = 0.0f;
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.penalty_last_n = -1;
  p.repetition_penalty = 1e-3f;
  p.top_k = 1 << 30;  // larger than any vocabulary: a no-op, not an error
  p.logit_bias = {{0, -100.0f}, {7, 100.0f}};
  EXPECT_NO_THROW(p.validate());
}

TEST(SamplingParams, EachRuleNamesItsParameter) {
  const float nan = NAN, inf = INFINITY;
  const std::vector<Bad> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [nan](SamplingParams& p) { p.temperature = nan; }},
      {"temperature", [inf](SamplingParams& p) { p.temperature = inf; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -1; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.01f; }},
      {"top_p", [nan](SamplingParams& p) { p.top_p = nan; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.01f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = -1.0f; }},
      {"repetition_penalty", [inf](SamplingParams& p) { p.repetition_penalty = inf; }},
      {"penalty_last_n", [](SamplingParams& p) { p.penalty_last_n = -2; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 2.5f; }},
      {"presence_penalty", [nan](SamplingParams& p) { p.presence_penalty = nan; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = -3.0f; }},
      {"logit_bias", [](SamplingParams& p) { p.logit_bias[-1] = 1.0f; }},
      {"logit_bias", [nan](SamplingParams& p) { p.logit_bias[3] = nan; }},
      {"logit_bias", [inf](SamplingParams& p) { p.logit_bias[3] = -inf; }},
  };
  for (const Bad& b : cases) {
    SamplingParams p;
    b.set(p);
    expect_refused(p, b.name);
  }
}

TEST(SamplingParams, SamplerChecksBiasIdsAgainstTheVocabulary) {
  SamplingParams p;
  p.logit_bias[10] = 1.0f;
  EXPECT_NO_THROW(Sampler(p, 11, 0));
  try {
    Sampler s(p, 10, 0);
    ADD_FAILURE() << "bias on token 10 of a 10-token vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
    EXPECT_NE(std::string(e.what()).find("'logit_bias'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("10"), std::string::npos) << e.what();
  }
}

TEST(SamplingParams, SamplerValidatesParams) {
  SamplingParams p;
  p.top_p = 2.0f;
  EXPECT_THROW(Sampler(p, 8, 0), Error);
}
