#include "train/eval_scores.h"

#include <map>

namespace tern::train {

EvalScores score_eval(const std::vector<std::vector<SampleScore>>& per_problem) {
  EvalScores s;
  int64_t right = 0, formatted = 0, tokens = 0, majority = 0, any = 0;
  for (const auto& samples : per_problem) {
    if (samples.empty()) continue;
    ++s.problems;
    std::map<std::string, int64_t> votes;
    const SampleScore* best = nullptr;
    int64_t best_votes = 0;
    bool some = false;
    for (const SampleScore& x : samples) {
      ++s.samples;
      right += x.correct;
      formatted += x.formatted;
      tokens += x.tokens;
      some = some || x.correct;
      const int64_t v = ++votes[x.answer];
      if (v > best_votes) best_votes = v, best = &x;  // ties keep the earlier answer
    }
    majority += best->correct;
    any += some;
  }
  if (s.samples > 0) {
    s.accuracy = double(right) / double(s.samples);
    s.format_rate = double(formatted) / double(s.samples);
    s.mean_response_tokens = double(tokens) / double(s.samples);
  }
  if (s.problems > 0) {
    s.majority_accuracy = double(majority) / double(s.problems);
    s.pass_at_k = double(any) / double(s.problems);
  }
  return s;
}

}  // namespace tern::train
