// `tern chat` end to end on a small random model whose tokenizer is trained on the spot and
// given a chat template: piped turns give deterministic answers on stdout, the slash commands
// work, reasoning goes to stderr off a terminal, and an overlong prompt does not end the session.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "tests/e2e/cli_runner.h"
#include "tests/e2e/tiny_chat_model.h"

using tern::test::run_tern_split;
namespace fs = std::filesystem;

namespace {

using tern::test::make_chat_model;
const std::string kTemplate = tern::test::kChatTemplate;

size_t count(const std::string& text, const std::string& word) {
  size_t n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(CliChat, TwoTurnsAreDeterministicAndReuseTheEarlierTurn) {
  const std::string dir = make_chat_model("turns", kTemplate), model = dir + "/model";
  // A system message of ~100 tokens fills the first 64-token KV block, so turn two must find
  // it in the pool's prefix index: the template renders the earlier turn identically.
  std::string system;
  for (int i = 0; i < 3; ++i) system += "zyxwvutsrqponmlkjihgfedcba9876543210";
  const std::string cmd = "chat " + model + " --temp 0 -n 8 --verbose --system '" + system + "'";
  const auto a = run_tern_split(cmd, "the quick brown\nthe lazy dog\n");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(count(a.err, "prompt tokens"), 2u) << a.err;
  EXPECT_NE(a.err.find("answers end at <｜end▁of▁sentence｜>, <|end|>"), std::string::npos)
      << "the template's end-of-turn token stops answers too: " << a.err;
  std::smatch m;
  const std::string err = a.err.substr(a.err.rfind("prompt tokens") - 8);
  ASSERT_TRUE(std::regex_search(err, m, std::regex(R"(\((\d+) reused\))"))) << a.err;
  EXPECT_GE(std::stoi(m[1]), 64) << a.err;
  EXPECT_GE(count(a.out, "\n"), 2u) << "each answer ends a line";
  const auto b = run_tern_split(cmd, "the quick brown\nthe lazy dog\n");
  EXPECT_EQ(a.out, b.out) << "greedy answers must not change between runs";
  EXPECT_EQ(a.out.find('\x1b'), std::string::npos) << "no ANSI escapes off a terminal";
  EXPECT_EQ(a.err.find('\x1b'), std::string::npos);
  EXPECT_EQ(a.out.find("tern chat:"), std::string::npos) << "messages belong on stderr";
  // The model drafting for itself (--draft) gives the same greedy answers over both turns.
  const auto c = run_tern_split(cmd + " --draft " + model, "the quick brown\nthe lazy dog\n");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, a.out);
  EXPECT_NE(c.err.find("drafts accepted"), std::string::npos) << c.err;
  fs::remove_all(dir);
}

TEST(CliChat, SlashCommands) {
  const std::string dir = make_chat_model("cmds", kTemplate), model = dir + "/model";
  const auto r = run_tern_split("chat " + model + " --temp 0 -n 6 --verbose",
                                "/help\nhello\n/reset\n/bogus\nhello\n/exit\nnever sent\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("/reset"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("conversation cleared"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unknown command '/bogus'"), std::string::npos) << r.err;
  EXPECT_EQ(count(r.err, "prompt tokens"), 2u) << "/exit ends before the last line: " << r.err;
  // After /reset the same message meets the same empty history, so the answer repeats.
  ASSERT_EQ(r.out.size() % 2, 0u) << r.out;
  EXPECT_EQ(r.out.substr(0, r.out.size() / 2), r.out.substr(r.out.size() / 2));
  // EOF ends the session as /exit does.
  EXPECT_EQ(run_tern_split("chat " + model + " -n 2", "hi").exit_code, 0);
  fs::remove_all(dir);
}

TEST(CliChat, APromptBeyondTheContextIsReportedAndTheSessionGoesOn) {
  const std::string dir = make_chat_model("ctx", kTemplate), model = dir + "/model";
  const std::string longline(200, '7');
  const auto r =
      run_tern_split("chat " + model + " --temp 0 -n 4 --ctx 32 --verbose", longline + "\nhi\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("the context holds 32; /reset"), std::string::npos) << r.err;
  EXPECT_EQ(count(r.err, "prompt tokens"), 1u) << "the short message still gets an answer";
  fs::remove_all(dir);
}

TEST(CliChat, ReasoningGoesToStderrOffATerminal) {
  // R1-style: the generation prompt opens <think>, so everything a random model says before a
  // </think> it never produces is reasoning.
  const std::string dir = make_chat_model("think", kTemplate +
                                                       "{% if add_generation_prompt %}"
                                                       "<think>\n{% endif %}"),
                    model = dir + "/model";
  const auto r = run_tern_split("chat " + model + " --temp 0 -n 8", "hello\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "\n") << "stdout holds only the (empty) answer";
  EXPECT_NE(r.err.find("thinking: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos);
  fs::remove_all(dir);
}

TEST(CliChat, BadRequestsAreOneLineErrors) {
  const std::string dir = make_chat_model("bad", ""), model = dir + "/model";
  auto r = run_tern_split("chat " + model, "hi\n");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count(r.err, "\n"), 1u) << r.err;
  r = run_tern_split("chat " + model + " --temp -1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--temp"), std::string::npos) << r.err;
  r = run_tern_split("chat " + model + " --kv-dtype int3");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_tern_split("chat");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  fs::remove_all(dir);
}
