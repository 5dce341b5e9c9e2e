// Verifiable tasks for post-training (GRPO rollouts) and `tern eval --task`: problems whose
// answers a rule can check, no learned judge. Bundled generators are deterministic in their
// seed; a task file is JSONL of {"prompt", "answer", "check": "exact|numeric|regex"}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::train {

enum class AnswerCheck { exact, numeric, regex, countdown };
const char* answer_check_name(AnswerCheck c);

struct Problem {
  std::string prompt;  // the question, as the user asks it
  // exact / numeric: the answer; regex: a pattern the answer must contain a match of;
  // countdown: the target value.
  std::string answer;
  AnswerCheck check = AnswerCheck::exact;
  std::vector<int64_t> numbers;  // countdown: the numbers an expression may use, each once
};

// Sums, differences and products of multi-digit numbers (2-3 digits), checked numerically.
std::vector<Problem> arithmetic_problems(int64_t count, uint64_t seed);
// Reach a target from 3-4 numbers with + - * / and parentheses, each number at most once; every
// target is reachable (it is built from the numbers).
std::vector<Problem> countdown_problems(int64_t count, uint64_t seed);
// A JSONL file; ErrorKind::request naming the line of the first malformed one (not an object,
// a missing or non-string field, an unknown check, a regex that does not compile), io when
// unreadable, request when it holds no problem.
std::vector<Problem> read_task_file(const std::string& path);

// "arithmetic", "countdown" (count problems from seed) or a JSONL path (its problems, at most
// count when count > 0).
std::vector<Problem> load_task(const std::string& task, int64_t count, uint64_t seed);

}  // namespace tern::train
