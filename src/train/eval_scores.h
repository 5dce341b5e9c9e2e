// Scoring `tern eval --task` runs: with k samples per problem, pass@1 (the mean accuracy over
// all samples), majority-vote accuracy (the most frequent extracted answer of a problem's
// samples, ties to the one seen first), pass@k (any sample right), the format rate and the mean
// response length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::train {

struct SampleScore {
  std::string answer;  // extracted answer (rewards.h)
  bool correct = false, formatted = false;
  int64_t tokens = 0;  // generated tokens
};

struct EvalScores {
  int64_t problems = 0, samples = 0;
  double accuracy = 0, majority_accuracy = 0, pass_at_k = 0, format_rate = 0;
  double mean_response_tokens = 0;
};

// per_problem[i]: problem i's samples (the same count for each).
EvalScores score_eval(const std::vector<std::vector<SampleScore>>& per_problem);

}  // namespace tern::train
