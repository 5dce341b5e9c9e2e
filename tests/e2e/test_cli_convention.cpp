// docs/cli.md, "errors and exit codes", one test per rule, on the real binary: a malformed
// command line exits 2 naming the offending word; a well-formed but wrong request exits 1; every
// error is one `tern: ...` line on stderr; --help and --version print to stdout and exit 0.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/e2e/cli_runner.h"

using tern::test::run_tern_split;
using tern::test::SplitResult;

namespace {

const std::string kData = TERN_TEST_DATA;
const std::string kV3 = kData + "/model/configs/deepseek_v3.json";
const std::string kTiny = kData + "/golden/qwen2_tiny";

// One line on stderr, starting "tern: ", holding `needle`; nothing on stdout.
void expect_error(const SplitResult& r, int code, const std::string& needle,
                  const std::string& what) {
  EXPECT_EQ(r.exit_code, code) << what << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("tern: ", 0), 0u) << what << "\n" << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << what << ": not one line\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": should name '" << needle << "'\n"
                                                   << r.err;
  EXPECT_TRUE(r.out.empty()) << what << "\n" << r.out;
}

}  // namespace

TEST(CliConvention, MalformedCommandLinesExit2NamingTheWord) {
  struct Case {
    std::string args, needle;
  };
  const Case cases[] = {
      {"frobnicate", "frobnicate"},
      {"plan frobnicate", "frobnicate"},
      {"info --frobnicate", "--frobnicate"},
      {"", "command"},
      {"init --out /nonexistent/x", "--config"},  // missing required flag
      {"tokenizer train --corpus x --vocab-size abc --out y", "abc"},
      {"logits " + kTiny + " --ids 1,2 --out x.npy --threads many", "many"},
      {"logits " + kTiny + " --ids 1,x,3 --out x.npy", "'x'"},
      {"plan train --config " + kV3 + " --tokens 14.8X --hardware h800 --mfu 0.4", "14.8X"},
      {"init --config " + kV3 + " --out x --dtype int3", "int3"},
      {"plan serve --config " + kV3 + " --hardware tpu", "tpu"},
      {"info", "exactly one"},
  };
  for (const Case& c : cases) expect_error(run_tern_split(c.args), 2, c.needle, c.args);
}

TEST(CliConvention, MalformedBeatsOutOfRange) {
  // Both wrong: the missing --corpus (exit 2) is reported, not the negative size (exit 1).
  expect_error(run_tern_split("tokenizer train --vocab-size -5 --out x"), 2, "--corpus",
               "missing and out of range");
}

TEST(CliConvention, WellFormedButWrongExits1) {
  const std::string corpus = kData + "/tokenizer/data/kjv_excerpt.txt";
  const std::string out = tern::test::temp_dir("convention") + "/tok";
  struct Case {
    std::string args, needle;
  };
  const Case cases[] = {
      {"tokenizer train --corpus " + corpus + " --vocab-size -5 --out " + out, "--vocab-size"},
      {"tokenizer train --corpus " + corpus + " --vocab-size 600 --min-frequency -3 --out " + out,
       "--min-frequency"},
      {"tokenizer train --corpus " + corpus + " --vocab-size 600 --bos '' --out " + out, "--bos"},
      {"tokenizer train --corpus " + corpus + " --vocab-size 600 --bos X --eos X --out " + out,
       "--bos and --eos"},
      {"tokenizer train --corpus /dev/null --vocab-size 600 --out " + out, "empty"},
      {"tokenizer train --corpus /nonexistent/corpus.txt --vocab-size 600 --out " + out,
       "/nonexistent/corpus.txt"},
      {"tokenizer bench " + kData + "/golden/qwen2_tiny --corpus " + corpus + " --repeat 0",
       "--repeat"},
      {"init --config " + kV3 + " --out " + out + " --seed -1", "--seed"},
      {"plan train --config " + kV3 + " --tokens 1T --hardware h800 --mfu 1.5", "--mfu"},
      {"plan serve --config " + kV3 + " --hardware h100 --bandwidth 0", "--bandwidth"},
      {"plan train --config " + kV3 + " --tokens 1e30 --hardware h800 --mfu 0.4", "--tokens"},
      {"plan train --config " + kV3 + " --tokens=-5T --hardware h800 --mfu 0.4", "negative"},
      {"plan train --config " + kV3 + " --tokens 1T --hardware h800 --mfu 0.4 --seq 1000000",
       "max_position_embeddings"},
      {"plan serve --config " + kV3 + " --hardware h100 --context 99999999", "--context"},
      {"logits " + kTiny + " --ids 1,999999 --out " + out + ".npy", "999999"},
      {"info /nonexistent/model", "/nonexistent/model"},
  };
  for (const Case& c : cases) expect_error(run_tern_split(c.args), 1, c.needle, c.args);
  EXPECT_FALSE(std::filesystem::exists(out)) << "nothing may be written on error";
}

TEST(CliConvention, HelpAndVersionGoToStdoutWithExit0) {
  for (const std::string args : {"--help", "plan train --help", "--version"}) {
    const SplitResult r = run_tern_split(args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    EXPECT_FALSE(r.out.empty()) << args;
    EXPECT_TRUE(r.err.empty()) << args << "\n" << r.err;
  }
}

TEST(CliConvention, EveryHelpShowsDefaultsAndAnExample) {
  const char* commands[] = {
      "info",       "init",       "logits",        "tokenize", "tokenizer train", "tokenizer bench",
      "plan train", "plan serve", "plan hardware", "train"};
  for (const char* c : commands) {
    const SplitResult r = run_tern_split(std::string(c) + " --help");
    ASSERT_EQ(r.exit_code, 0) << c;
    EXPECT_NE(r.out.find("Example:\n  tern "), std::string::npos) << c << "\n" << r.out;
  }
  const SplitResult r = run_tern_split("plan train --help");
  for (const char* needle : {"REQUIRED", "=4096", "--seq", "=1.2", "in [1, 5]", "(bf16, fp8)"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
}

TEST(CliConvention, ChatMessagesAreCheckedBeforeRendering) {
  const std::string ds = std::string(TERN_TOK_DATA) + "/deepseek_v3";
  expect_error(run_tern_split("tokenize " + ds + " --chat", "[{\"role\":\"user\"}]\n"), 1,
               "'content'", "no content");
  expect_error(run_tern_split("tokenize " + ds + " --chat", "[{\"content\":\"hi\"}]\n"), 1,
               "'role'", "no role");
  expect_error(
      run_tern_split("tokenize " + ds + " --chat", "[{\"role\":\"user\",\"content\":3}]\n"), 1,
      "'content'", "numeric content");
  // An assistant turn with tool calls may leave content out or null (OpenAI's schema).
  const std::string calls =
      R"([{"role":"user","content":"Weather?"},{"role":"assistant","tool_calls":[{"type":)"
      R"("function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","content":"sun"}])";
  const SplitResult r = run_tern_split("tokenize " + ds + " --chat", calls + "\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("w"), std::string::npos) << r.out;
}

TEST(CliConvention, ParserTextIsReworded) {
  const std::string dir = tern::test::temp_dir("convention_json");
  std::ofstream(dir + "/hw.json") << "{bad";
  const SplitResult hw =
      run_tern_split("plan serve --config " + kV3 + " --hardware-file " + dir + "/hw.json");
  expect_error(hw, 1, dir + "/hw.json: not valid JSON at line 1 column 2", "--hardware-file");
  const SplitResult cfg = run_tern_split("info --config -", "{\"a\":\n");
  expect_error(cfg, 1, "<stdin>: not valid JSON at line 2", "config on stdin");
  for (const SplitResult* r : {&hw, &cfg})
    EXPECT_EQ(r->err.find("json.exception"), std::string::npos) << r->err;
}
