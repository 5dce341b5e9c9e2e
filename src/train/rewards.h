// Rule-based rewards (the R1-Zero recipe): accuracy from a checker that reads the answer out of
// the response, format from R1's template ("<think>…</think>" then the answer). Each is a
// small pure function; a malformed response scores 0, never throws.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "train/tasks.h"

namespace tern::train {

// The answer part of a response: the inside of the last <answer>…</answer> when there is one,
// else what follows the last "</think>" (the whole response without it), trimmed.
std::string extract_answer(std::string_view response);

// R1's format: optional whitespace, "<think>", reasoning, "</think>", then a non-empty answer;
// exactly one think block.
bool well_formatted(std::string_view response);

// The value of a countdown expression (digits, + - * /, parentheses, spaces) that uses only the
// given numbers, each at most once; nullopt when it is malformed, divides by zero or uses
// another number.
std::optional<double> evaluate_countdown(std::string_view expr,
                                         const std::vector<int64_t>& numbers);

// 1 when the extracted answer is right under the problem's check, else 0. numeric: the last
// number in the answer equals the expected one (to 1e-6 relative); exact: equal after trimming;
// regex: the answer contains a match; countdown: the expression (the answer's last line, before
// any '=') evaluates to the target.
double accuracy_reward(const Problem& p, std::string_view response);
double format_reward(std::string_view response);

struct RewardWeights {
  double accuracy = 1.0, format = 0.1;
};
// "accuracy=1,format=0.1" (either may be left out); ErrorKind::request naming a bad entry.
RewardWeights parse_reward_weights(const std::string& text);
double total_reward(const Problem& p, std::string_view response, const RewardWeights& w);

}  // namespace tern::train
