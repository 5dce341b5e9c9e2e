// The real `tern tokenize` and `tern tokenizer train` binaries: the line protocols of the issue,
// bad input (non-zero exit and a message, never a crash) and a train -> tokenize round trip.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

#include "tests/tokenizer/test_util.h"

namespace tern::tokenizer::test {
namespace {

struct CliRun {
  int rc;
  std::string out, err;
};

// Runs `tern ARGS < input` and captures stdout/stderr.
CliRun tern(const std::string& args, const std::string& input) {
  // ctest runs tests in parallel processes: names carry the pid so runs never share files.
  auto dir = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid());
  std::string in = (dir / ("tern_tok_cli_in_" + tag)).string(),
              out = (dir / ("tern_tok_cli_out_" + tag)).string(),
              err = (dir / ("tern_tok_cli_err_" + tag)).string();
  std::ofstream(in, std::ios::binary) << input;
  std::string cmd = std::string(TERN_BINARY) + " " + args + " < " + in + " > " + out + " 2> " + err;
  int status = std::system(cmd.c_str());
  return {WEXITSTATUS(status), read_text(out), read_text(err)};
}

const std::string kDs = model_dir("deepseek_v3");

TEST(Cli, EncodeLinesWithAndWithoutSpecials) {
  CliRun r = tern("tokenize " + kDs, "Hello, world!\n你好\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "[0,19923,14,2058,3]\n[0,30594]\n");
  r = tern("tokenize " + kDs + " --no-special --tokens", "Hello world\n");
  EXPECT_EQ(r.out, "{\"ids\":[19923,2058],\"tokens\":[\"Hello\",\"Ġworld\"]}\n");
  r = tern("tokenize " + kDs + " --json-in --no-special", "\"a\\nb\"\n");
  EXPECT_EQ(r.out, "[67,201,68]\n");
}

TEST(Cli, DecodeAndChat) {
  CliRun r = tern("tokenize " + kDs + " --decode", "[0,19923,14,2058,3]\n");
  EXPECT_EQ(r.out, "<｜begin▁of▁sentence｜>Hello, world!\n");
  r = tern("tokenize " + kDs + " --decode --skip-special --json-in", "[0,67,201,68]\n");
  EXPECT_EQ(r.out, "\"a\\nb\"\n");
  r = tern("tokenize " + kDs + " --chat", "[{\"role\":\"user\",\"content\":\"hi\"}]\n");
  EXPECT_EQ(r.out,
            "{\"text\":\"<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>\",\"ids\":[0,128803,"
            "6366,128804]}\n");
  r = tern("tokenize " + kDs + " --chat --no-generation-prompt",
           "[{\"role\":\"user\",\"content\":\"hi\"}]\n");
  EXPECT_EQ(r.out, "{\"text\":\"<｜begin▁of▁sentence｜><｜User｜>hi\",\"ids\":[0,128803,6366]}\n");
}

TEST(Cli, BadInputFailsCleanly) {
  CliRun r = tern("tokenize " + kDs + " --decode", "not json\n");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("stdin line 1"), std::string::npos) << r.err;
  r = tern("tokenize /nonexistent", "x\n");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("/nonexistent: no such file or directory"), std::string::npos) << r.err;
  r = tern("tokenize " + kDs + " --chat", "{\"messages\": 3}\n");
  EXPECT_EQ(r.rc, 1);
}

TEST(Cli, TrainThenTokenize) {
  auto dir = (std::filesystem::temp_directory_path() /
              ("tern_tok_cli_trained_" + std::to_string(::getpid())))
                 .string();
  std::filesystem::remove_all(dir);  // tern never replaces an output without --force
  std::string corpus = std::string(TERN_TEST_DATA) + "/tokenizer/data/kjv_excerpt.txt";
  CliRun r = tern("tokenizer train --corpus " + corpus + " --vocab-size 600 --out " + dir, "");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("trained 342 merges"), std::string::npos) << r.out;
  r = tern("tokenize " + dir + " --no-special", "In the beginning\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  CliRun d = tern("tokenize " + dir + " --decode", r.out);
  EXPECT_EQ(d.out, "In the beginning\n");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tern::tokenizer::test

namespace tern::tokenizer::test {
namespace {

TEST(Cli, ChatWithToolsAndTemplateVariables) {
  std::string qwen = model_dir("qwen3");
  std::string conv =
      R"({"messages": [{"role": "user", "content": "Weather?"}], )"
      R"("tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}], )"
      R"("enable_thinking": false})";
  CliRun r = tern("tokenize " + qwen + " --chat", conv + "\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto out = nlohmann::json::parse(r.out);
  std::string text = out["text"].get<std::string>();
  EXPECT_NE(text.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"w\", "
                      "\"parameters\": {}}}\n</tools>"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("<|im_start|>assistant\n<think>\n\n</think>\n\n"), std::string::npos) << text;
  EXPECT_EQ(model("qwen3").decode(out["ids"].get<std::vector<int32_t>>()), text);
}

}  // namespace
}  // namespace tern::tokenizer::test
