// The bundled verifiable tasks and task files (see tasks.h).
#include "train/tasks.h"

#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/random.h"
#include "train/jsonl.h"

namespace tern::train {

namespace {

// Uniform integer in [lo, hi] from the counter-based generator: draw i of (seed, stream).
int64_t pick(uint64_t seed, uint64_t stream, uint64_t i, int64_t lo, int64_t hi) {
  const double u = rng::uniform_double(seed, stream, i);
  return lo + std::min<int64_t>(hi - lo, int64_t(u * double(hi - lo + 1)));
}

}  // namespace

const char* answer_check_name(AnswerCheck c) {
  switch (c) {
    case AnswerCheck::exact:
      return "exact";
    case AnswerCheck::numeric:
      return "numeric";
    case AnswerCheck::regex:
      return "regex";
    case AnswerCheck::countdown:
      return "countdown";
  }
  return "?";
}

std::vector<Problem> arithmetic_problems(int64_t count, uint64_t seed) {
  const uint64_t stream = rng::stream_id("task/arithmetic");
  std::vector<Problem> out;
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t at = uint64_t(i) * 4;
    const int64_t op = pick(seed, stream, at, 0, 2);
    const int64_t a = pick(seed, stream, at + 1, 10, op == 2 ? 99 : 999);
    const int64_t b = pick(seed, stream, at + 2, 10, op == 2 ? 99 : 999);
    const char* sym = op == 0 ? "+" : op == 1 ? "-" : "*";
    const int64_t value = op == 0 ? a + b : op == 1 ? a - b : a * b;
    Problem p;
    p.prompt = "What is " + std::to_string(a) + " " + sym + " " + std::to_string(b) + "?";
    p.answer = std::to_string(value);
    p.check = AnswerCheck::numeric;
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<Problem> countdown_problems(int64_t count, uint64_t seed) {
  const uint64_t stream = rng::stream_id("task/countdown");
  std::vector<Problem> out;
  uint64_t at = 0;
  while (int64_t(out.size()) < count) {
    const int64_t n = pick(seed, stream, at++, 3, 4);
    std::vector<int64_t> numbers;
    for (int64_t k = 0; k < n; ++k) numbers.push_back(pick(seed, stream, at++, 1, 25));
    // The target: the numbers combined left to right with random operations (a division only
    // when exact), so a solution exists; targets that are not positive are redrawn.
    int64_t value = numbers[0];
    for (int64_t k = 1; k < n; ++k) {
      const int64_t op = pick(seed, stream, at++, 0, 3), x = numbers[size_t(k)];
      if (op == 0)
        value += x;
      else if (op == 1)
        value -= x;
      else if (op == 2)
        value *= x;
      else if (x != 0 && value % x == 0)
        value /= x;
      else
        value += x;
    }
    if (value <= 0 || value > 10000) continue;
    Problem p;
    std::string list;
    for (int64_t x : numbers) list += (list.empty() ? "" : ", ") + std::to_string(x);
    p.prompt = "Using the numbers [" + list +
               "], each at most once, and + - * / with parentheses, write an expression that "
               "equals " +
               std::to_string(value) + ".";
    p.answer = std::to_string(value);
    p.check = AnswerCheck::countdown;
    p.numbers = numbers;
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<Problem> read_task_file(const std::string& path) {
  std::vector<Problem> out;
  for_each_jsonl_line(path, [&](const nlohmann::ordered_json& j, const std::string& where) {
    if (!j.is_object()) fail(ErrorKind::request, where + "not a JSON object");
    for (const char* key : {"prompt", "answer"})
      if (!j.contains(key) || !j[key].is_string())
        fail(ErrorKind::request, where + "'" + key + "' must be a string");
    Problem p;
    p.prompt = j["prompt"].get<std::string>();
    p.answer = j["answer"].get<std::string>();
    const std::string check = j.value("check", std::string("exact"));
    if (check == "exact")
      p.check = AnswerCheck::exact;
    else if (check == "numeric")
      p.check = AnswerCheck::numeric;
    else if (check == "regex")
      p.check = AnswerCheck::regex;
    else
      fail(ErrorKind::request,
           where + "'check' must be exact, numeric or regex, got '" + check + "'");
    if (p.check == AnswerCheck::regex) {
      try {
        std::regex re(p.answer);
      } catch (const std::regex_error& e) {
        fail(ErrorKind::request, where + "the regex does not compile (" + e.what() + ")");
      }
    }
    if (p.check == AnswerCheck::numeric) {
      char* end = nullptr;
      std::strtod(p.answer.c_str(), &end);
      if (p.answer.empty() || *end != '\0')
        fail(ErrorKind::request,
             where + "a numeric answer must be a number, got '" + p.answer + "'");
    }
    out.push_back(std::move(p));
  });
  if (out.empty()) fail(ErrorKind::request, "task file " + path + " holds no problem");
  return out;
}

std::vector<Problem> load_task(const std::string& task, int64_t count, uint64_t seed) {
  if (task == "arithmetic") return arithmetic_problems(count, seed);
  if (task == "countdown") return countdown_problems(count, seed);
  std::vector<Problem> p = read_task_file(task);
  if (count > 0 && int64_t(p.size()) > count) p.resize(size_t(count));
  return p;
}

}  // namespace tern::train
