// Rule-based rewards (see rewards.h).
#include "train/rewards.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "core/error.h"

namespace tern::train {

namespace {

std::string trim(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(a, b - a + 1));
}

// The last number written in s ("The answer is -1,234.5." -> -1234.5); commas between digits
// are thousands separators.
std::optional<double> last_number(std::string_view s) {
  static const std::regex number(R"(-?\d[\d,]*(\.\d+)?)");
  std::optional<double> last;
  for (auto it = std::cregex_iterator(s.data(), s.data() + s.size(), number);
       it != std::cregex_iterator(); ++it) {
    std::string text = it->str();
    std::erase(text, ',');
    last = std::strtod(text.c_str(), nullptr);
  }
  return last;
}

// Recursive descent over: expr = term (('+'|'-') term)*; term = factor (('*'|'/') factor)*;
// factor = number | '(' expr ')' | '-' factor.
class CountdownParser {
 public:
  CountdownParser(std::string_view s, std::vector<int64_t> numbers)
      : s_(s), left_(std::move(numbers)) {}

  std::optional<double> run() {
    const std::optional<double> v = expr(0);
    skip();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;
  void skip() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  std::optional<double> expr(int depth) {
    std::optional<double> v = term(depth);
    while (v) {
      if (eat('+')) {
        const auto r = term(depth);
        v = r ? std::optional<double>(*v + *r) : std::nullopt;
      } else if (eat('-')) {
        const auto r = term(depth);
        v = r ? std::optional<double>(*v - *r) : std::nullopt;
      } else {
        break;
      }
    }
    return v;
  }
  std::optional<double> term(int depth) {
    std::optional<double> v = factor(depth);
    while (v) {
      if (eat('*')) {
        const auto r = factor(depth);
        v = r ? std::optional<double>(*v * *r) : std::nullopt;
      } else if (eat('/')) {
        const auto r = factor(depth);
        v = r && *r != 0 ? std::optional<double>(*v / *r) : std::nullopt;
      } else {
        break;
      }
    }
    return v;
  }
  std::optional<double> factor(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    if (eat('(')) {
      const auto v = expr(depth + 1);
      return v && eat(')') ? v : std::nullopt;
    }
    if (eat('-')) {
      const auto v = factor(depth + 1);
      return v ? std::optional<double>(-*v) : std::nullopt;
    }
    skip();
    size_t end = pos_;
    while (end < s_.size() && end - pos_ < 12 && s_[end] >= '0' && s_[end] <= '9') ++end;
    if (end == pos_) return std::nullopt;
    const int64_t n = std::strtoll(std::string(s_.substr(pos_, end - pos_)).c_str(), nullptr, 10);
    pos_ = end;
    // Each given number once.
    const auto it = std::find(left_.begin(), left_.end(), n);
    if (it == left_.end()) return std::nullopt;
    left_.erase(it);
    return double(n);
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::vector<int64_t> left_;
};

}  // namespace

std::string extract_answer(std::string_view response) {
  const size_t open = response.rfind("<answer>");
  if (open != std::string_view::npos) {
    const size_t from = open + 8;
    const size_t close = response.find("</answer>", from);
    return trim(response.substr(from, close == std::string_view::npos ? close : close - from));
  }
  const size_t think_end = response.rfind("</think>");
  if (think_end != std::string_view::npos) return trim(response.substr(think_end + 8));
  return trim(response);
}

bool well_formatted(std::string_view response) {
  const std::string r = trim(response);
  if (!r.starts_with("<think>")) return false;
  const size_t close = r.find("</think>");
  if (close == std::string::npos) return false;
  if (r.find("<think>", 7) != std::string::npos ||
      r.find("</think>", close + 8) != std::string::npos)
    return false;
  return !extract_answer(r).empty();
}

std::optional<double> evaluate_countdown(std::string_view expr,
                                         const std::vector<int64_t>& numbers) {
  if (expr.size() > 256) return std::nullopt;
  for (char c : expr)
    if (!(c == ' ' || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '*' || c == '/' ||
          c == '(' || c == ')'))
      return std::nullopt;
  return CountdownParser(expr, numbers).run();
}

double accuracy_reward(const Problem& p, std::string_view response) {
  const std::string answer = extract_answer(response);
  if (answer.empty()) return 0;
  switch (p.check) {
    case AnswerCheck::exact:
      return answer == trim(p.answer) ? 1 : 0;
    case AnswerCheck::numeric: {
      const std::optional<double> got = last_number(answer);
      const double want = std::strtod(p.answer.c_str(), nullptr);
      return got && std::fabs(*got - want) <= 1e-6 * std::max(1.0, std::fabs(want)) ? 1 : 0;
    }
    case AnswerCheck::regex:
      try {
        return std::regex_search(answer, std::regex(p.answer)) ? 1 : 0;
      } catch (const std::regex_error&) {
        return 0;
      }
    case AnswerCheck::countdown: {
      std::string_view line = answer;
      if (const size_t nl = line.rfind('\n'); nl != std::string_view::npos)
        line = line.substr(nl + 1);
      if (const size_t eq = line.find('='); eq != std::string_view::npos) line = line.substr(0, eq);
      const std::optional<double> v = evaluate_countdown(trim(line), p.numbers);
      const double want = std::strtod(p.answer.c_str(), nullptr);
      return v && std::fabs(*v - want) < 1e-9 ? 1 : 0;
    }
  }
  return 0;
}

double format_reward(std::string_view response) {
  return well_formatted(response) ? 1 : 0;
}

RewardWeights parse_reward_weights(const std::string& text) {
  RewardWeights w;
  size_t at = 0;
  while (at < text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    const size_t eq = item.find('=');
    char* end = nullptr;
    const double v = eq == std::string::npos ? 0 : std::strtod(item.c_str() + eq + 1, &end);
    if (eq == std::string::npos || end == item.c_str() + eq + 1 || *end != '\0' ||
        !std::isfinite(v))
      fail(ErrorKind::request, "--reward-weights: '" + item + "' is not NAME=NUMBER");
    const std::string name = item.substr(0, eq);
    if (name == "accuracy")
      w.accuracy = v;
    else if (name == "format")
      w.format = v;
    else
      fail(ErrorKind::request,
           "--reward-weights: unknown reward '" + name + "' (accuracy, format)");
    at = comma + 1;
  }
  return w;
}

double total_reward(const Problem& p, std::string_view response, const RewardWeights& w) {
  return w.accuracy * accuracy_reward(p, response) + w.format * format_reward(response);
}

}  // namespace tern::train
