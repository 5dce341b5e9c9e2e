// Rule-based rewards and verifiable tasks on hand-made right, wrong and malformed answers; the
// bundled generators are deterministic and every countdown target is reachable.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/eval_scores.h"
#include "train/rewards.h"
#include "train/tasks.h"

using namespace tern;
using namespace tern::train;

namespace {
Problem numeric(const std::string& answer) {
  Problem p;
  p.prompt = "q";
  p.answer = answer;
  p.check = AnswerCheck::numeric;
  return p;
}
}  // namespace

TEST(Rewards, ExtractsTheAnswerAfterTheReasoning) {
  EXPECT_EQ(extract_answer("<think>2+2 is 4</think>\n\n 4 "), "4");
  EXPECT_EQ(extract_answer("<think>a</think> x <answer> 7 </answer>"), "7");
  EXPECT_EQ(extract_answer("plain 12"), "plain 12");
  EXPECT_EQ(extract_answer("<think>unfinished"), "<think>unfinished");
  EXPECT_EQ(extract_answer("<answer>3"), "3") << "an unclosed answer tag runs to the end";
}

TEST(Rewards, FormatIsOneThinkBlockThenAnAnswer) {
  EXPECT_TRUE(well_formatted("<think>\nsteps\n</think>\n\n42"));
  EXPECT_TRUE(well_formatted("  <think>x</think><answer>1</answer>"));
  EXPECT_FALSE(well_formatted("42"));
  EXPECT_FALSE(well_formatted("<think>steps</think>   "));
  EXPECT_FALSE(well_formatted("<think>a</think><think>b</think> 1"));
  EXPECT_FALSE(well_formatted("<think>never closed 1"));
  EXPECT_FALSE(well_formatted("x <think>a</think> 1"));
  EXPECT_EQ(format_reward("<think>a</think> 1"), 1);
  EXPECT_EQ(format_reward(""), 0);
}

TEST(Rewards, NumericAccuracyReadsTheLastNumber) {
  const Problem p = numeric("1234");
  EXPECT_EQ(accuracy_reward(p, "<think>1000+234</think> The answer is 1,234."), 1);
  EXPECT_EQ(accuracy_reward(p, "<think>it is 1234</think> 1235"), 0)
      << "the answer, not the reasoning";
  EXPECT_EQ(accuracy_reward(p, "<think>x</think>"), 0);
  EXPECT_EQ(accuracy_reward(p, "\xff\xfe garbage"), 0);
  EXPECT_EQ(accuracy_reward(numeric("-5"), "so -5"), 1);
  EXPECT_EQ(accuracy_reward(numeric("2.5"), "2.50"), 1);
}

TEST(Rewards, ExactAndRegexChecks) {
  Problem e;
  e.answer = "Paris";
  e.check = AnswerCheck::exact;
  EXPECT_EQ(accuracy_reward(e, "<think>capital</think> Paris\n"), 1);
  EXPECT_EQ(accuracy_reward(e, "paris"), 0);
  Problem r;
  r.answer = "^[A-D]$";
  r.check = AnswerCheck::regex;
  EXPECT_EQ(accuracy_reward(r, "<answer>C</answer>"), 1);
  EXPECT_EQ(accuracy_reward(r, "<answer>E</answer>"), 0);
  r.answer = "([";  // a broken pattern scores 0 rather than throwing
  EXPECT_EQ(accuracy_reward(r, "x"), 0);
}

TEST(Rewards, CountdownEvaluatesTheExpressionWithTheGivenNumbers) {
  const std::vector<int64_t> nums = {3, 7, 25, 4};
  EXPECT_EQ(evaluate_countdown("(25 - 3) * 4 / 7 * 7", nums), std::nullopt) << "7 used twice";
  EXPECT_DOUBLE_EQ(*evaluate_countdown("(25 - 3) * 4 + 7", nums), 95);
  EXPECT_DOUBLE_EQ(*evaluate_countdown("25/(7-3)", nums), 6.25);
  EXPECT_EQ(evaluate_countdown("25 + 5", nums), std::nullopt) << "5 is not given";
  EXPECT_EQ(evaluate_countdown("3 / (7 - 7)", {3, 7, 7}), std::nullopt) << "division by zero";
  EXPECT_EQ(evaluate_countdown("3 +", nums), std::nullopt);
  EXPECT_EQ(evaluate_countdown("import os", nums), std::nullopt);
  EXPECT_EQ(evaluate_countdown(std::string(200, '(') + "3" + std::string(200, ')'), nums),
            std::nullopt)
      << "bounded nesting";
  Problem p;
  p.check = AnswerCheck::countdown;
  p.answer = "95";
  p.numbers = nums;
  EXPECT_EQ(accuracy_reward(p, "<think>try</think>\n(25 - 3) * 4 + 7 = 95"), 1);
  EXPECT_EQ(accuracy_reward(p, "<think>try</think>\n25 * 4 - 3 - 7 = 90"), 0);
}

TEST(Rewards, WeightsAreParsedAndApplied) {
  const RewardWeights w = parse_reward_weights("accuracy=1,format=0.5");
  EXPECT_EQ(w.accuracy, 1);
  EXPECT_EQ(w.format, 0.5);
  EXPECT_DOUBLE_EQ(total_reward(numeric("4"), "<think>2+2</think> 4", w), 1.5);
  EXPECT_DOUBLE_EQ(total_reward(numeric("4"), "4", w), 1.0);
  EXPECT_THROW(parse_reward_weights("accuracy=x"), Error);
  EXPECT_THROW(parse_reward_weights("style=1"), Error);
  EXPECT_EQ(parse_reward_weights("").format, 0.1) << "defaults stand";
}

TEST(Tasks, GeneratorsAreDeterministicAndTheirAnswersCheckOut) {
  const auto a = arithmetic_problems(50, 7), b = arithmetic_problems(50, 7);
  ASSERT_EQ(a.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt, b[i].prompt);
    EXPECT_EQ(accuracy_reward(a[i], "<think>..</think> " + a[i].answer), 1) << a[i].prompt;
  }
  EXPECT_NE(arithmetic_problems(5, 8)[0].prompt + arithmetic_problems(5, 8)[1].prompt,
            a[0].prompt + a[1].prompt);
  // Every countdown target is reachable: the numbers combined left to right with some
  // operations give it (search every operator choice).
  for (const Problem& p : countdown_problems(40, 3)) {
    ASSERT_GE(p.numbers.size(), 3u);
    const double target = std::stod(p.answer);
    bool found = false;
    const size_t n = p.numbers.size();
    for (int code = 0; code < (1 << (2 * (n - 1))) && !found; ++code) {
      std::string expr = std::to_string(p.numbers[0]);
      for (size_t k = 1; k < n; ++k)
        expr =
            "(" + expr + ")" + "+-*/"[(code >> (2 * (k - 1))) & 3] + std::to_string(p.numbers[k]);
      const auto v = evaluate_countdown(expr, p.numbers);
      found = v && *v == target;
    }
    EXPECT_TRUE(found) << p.prompt;
  }
}

TEST(Tasks, TaskFilesNameTheirBadLine) {
  const std::string dir = std::filesystem::temp_directory_path() / "tern_task_test";
  std::filesystem::create_directories(dir);
  const std::string good = dir + "/good.jsonl", bad = dir + "/bad.jsonl";
  std::ofstream(good) << R"({"prompt":"2+2?","answer":"4","check":"numeric"})"
                      << "\n\n"
                      << R"({"prompt":"Capital?","answer":"Paris"})"
                      << "\n";
  const auto ps = read_task_file(good);
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].check, AnswerCheck::numeric);
  EXPECT_EQ(ps[1].check, AnswerCheck::exact);
  EXPECT_EQ(load_task(good, 1, 0).size(), 1u);
  for (const std::string& line :
       {std::string("not json"), std::string(R"({"prompt":1,"answer":"x"})"),
        std::string(R"({"prompt":"p","answer":"x","check":"fuzzy"})"),
        std::string(R"({"prompt":"p","answer":"([","check":"regex"})"),
        std::string(R"({"prompt":"p","answer":"four","check":"numeric"})")}) {
    std::ofstream(bad) << R"({"prompt":"ok","answer":"1"})"
                       << "\n"
                       << line << "\n";
    try {
      read_task_file(bad);
      ADD_FAILURE() << line;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::request);
      EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
  }
  std::ofstream(bad) << "\n";
  EXPECT_THROW(read_task_file(bad), Error);
  EXPECT_THROW(read_task_file(dir + "/missing.jsonl"), Error);
  std::filesystem::remove_all(dir);
}

TEST(EvalScores, MajorityPassAtKAndMeans) {
  // Problem 0: answers 5 (wrong), 7 (right), 5 (wrong): majority wrong, pass@3 right.
  // Problem 1: 9 (right), 3 (wrong), 9 (right): majority right.
  const std::vector<std::vector<SampleScore>> runs = {
      {{"5", false, true, 10}, {"7", true, true, 20}, {"5", false, false, 30}},
      {{"9", true, true, 4}, {"3", false, true, 6}, {"9", true, true, 2}},
  };
  const EvalScores s = score_eval(runs);
  EXPECT_EQ(s.problems, 2);
  EXPECT_EQ(s.samples, 6);
  EXPECT_DOUBLE_EQ(s.accuracy, 3.0 / 6.0);
  EXPECT_DOUBLE_EQ(s.majority_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(s.pass_at_k, 1.0);
  EXPECT_DOUBLE_EQ(s.format_rate, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(s.mean_response_tokens, 72.0 / 6.0);
  // A tie goes to the answer seen first.
  const EvalScores t = score_eval({{{"1", true, false, 1}, {"2", false, false, 1}}});
  EXPECT_DOUBLE_EQ(t.majority_accuracy, 1.0);
  EXPECT_EQ(score_eval({}).problems, 0);
}
