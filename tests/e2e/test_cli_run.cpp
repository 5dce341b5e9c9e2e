// `tern run` end to end on a small random model with a tokenizer trained on the spot: stdout
// holds only the generated text, greedy runs are identical, the summary goes to stderr, and
// bad requests (prompt beyond the context, bad flags, a GGUF without a tokenizer) are one-line
// errors with the convention's exit codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"

using tern::test::run_tern_split;
namespace fs = std::filesystem;

namespace {

const std::string kData = TERN_TEST_DATA;

// A V3-shaped random model (vocab 320) with a byte-level BPE tokenizer of 300 ids beside it.
std::string make_model(int context = 64) {
  const std::string dir = tern::test::temp_dir("run");
  std::ifstream in(kData + "/golden/v3_tiny/config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["vocab_size"] = 320;
  cfg["max_position_embeddings"] = context;
  cfg["bos_token_id"] = 0;
  cfg["eos_token_id"] = 1;
  std::ofstream(dir + "/config.json") << cfg.dump();
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 100; ++i)
      corpus << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  auto r = run_tern_split("init --config " + dir + "/config.json --out " + dir + "/model --seed 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_tern_split("tokenizer train --corpus " + dir + "/corpus.txt --vocab-size 300 --out " +
                     dir + "/tok");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(dir + "/tok/" + f, dir + "/model/" + f, fs::copy_options::overwrite_existing);
  return dir;
}

}  // namespace

TEST(CliRun, GreedyIsDeterministicAndStdoutHoldsOnlyText) {
  const std::string dir = make_model(), model = dir + "/model";
  const auto a = run_tern_split("run " + model + " -p 'the quick brown' -n 12 --temp 0");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto b = run_tern_split("run " + model + " -p 'the quick brown' -n 12 --temp 0");
  EXPECT_EQ(a.out, b.out) << "greedy output must not change between runs";
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out.find("tern run:"), std::string::npos) << "the summary belongs on stderr";
  EXPECT_NE(a.err.find("generated"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("stopped: "), std::string::npos) << a.err;
  // The same prompt from stdin and from a file.
  const auto c = run_tern_split("run " + model + " -p - -n 12 --temp 0", "the quick brown");
  EXPECT_EQ(c.out, a.out) << c.err;
  std::ofstream(dir + "/prompt.txt") << "the quick brown";
  const auto d = run_tern_split("run " + model + " -f " + dir + "/prompt.txt -n 12 --temp 0");
  EXPECT_EQ(d.out, a.out) << d.err;
  // The model carries an MTP module, so it drafts by default; greedy output is the same.
  EXPECT_NE(a.err.find("MTP drafts accepted"), std::string::npos) << a.err;
  const auto plain =
      run_tern_split("run " + model + " -p 'the quick brown' -n 12 --temp 0 --no-mtp");
  EXPECT_EQ(plain.out, a.out) << plain.err;
  EXPECT_EQ(plain.err.find("MTP drafts"), std::string::npos) << plain.err;
  const auto lookup =
      run_tern_split("run " + model + " -p 'the quick brown' -n 12 --temp 0 --lookup 4");
  EXPECT_EQ(lookup.out, a.out) << lookup.err;
  EXPECT_NE(lookup.err.find("prompt-lookup drafts accepted"), std::string::npos) << lookup.err;
  // A draft model: another checkpoint of the same config and tokenizer, and the model itself.
  auto r = run_tern_split("init --config " + dir + "/config.json --out " + dir + "/draft --seed 9");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::copy_file(model + "/tokenizer.json", dir + "/draft/tokenizer.json");
  for (const std::string& d : {dir + "/draft", model}) {
    const auto drafted = run_tern_split("run " + model + " -p 'the quick brown' -n 12 --temp 0 " +
                                        "--draft " + d + " --draft-max 3");
    EXPECT_EQ(drafted.out, a.out) << drafted.err;
    EXPECT_NE(drafted.err.find("draft-model drafts accepted"), std::string::npos) << drafted.err;
  }
  // Seeded sampling is reproducible too.
  const auto s1 = run_tern_split("run " + model + " -p 'the lazy' -n 12 --temp 1 --seed 7");
  const auto s2 = run_tern_split("run " + model + " -p 'the lazy' -n 12 --temp 1 --seed 7");
  EXPECT_EQ(s1.out, s2.out);
  fs::remove_all(dir);
}

TEST(CliRun, JsonSchemaConstrainsTheOutput) {
  // A random model spends many tokens on the blanks JSON allows: give it room.
  const std::string dir = make_model(512), model = dir + "/model";
  std::ofstream(dir + "/schema.json") << R"({"type":"object","properties":{"ok":{"type":"boolean"},
             "color":{"enum":["red","green"]}},"required":["ok","color"],
             "additionalProperties":false})";
  int complete = 0;
  for (int seed = 1; seed <= 5; ++seed) {
    const auto r = run_tern_split("run " + model + " -p 'the quick' -n 200 --temp 1 --seed " +
                                  std::to_string(seed) + " --json-schema " + dir + "/schema.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (r.err.find("stopped: document complete") == std::string::npos) continue;
    ++complete;
    nlohmann::json doc;
    ASSERT_NO_THROW(doc = nlohmann::json::parse(r.out)) << r.out;
    EXPECT_TRUE(doc["ok"].is_boolean()) << r.out;
    EXPECT_TRUE(doc["color"] == "red" || doc["color"] == "green") << r.out;
    EXPECT_EQ(doc.size(), 2u) << r.out;
  }
  EXPECT_GE(complete, 3) << "a two-field document fits in 200 tokens unless blanks run long";
  std::ofstream(dir + "/bad.json") << R"({"type":"string","pattern":"a+"})";
  auto r = run_tern_split("run " + model + " -p hi --json-schema " + dir + "/bad.json");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("pattern"), std::string::npos) << r.err;
  r = run_tern_split("run " + model + " -p hi --json --lookup 2");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  fs::remove_all(dir);
}

TEST(CliRun, BadRequestsAreOneLineErrors) {
  const std::string dir = make_model(), model = dir + "/model";
  auto r = run_tern_split("run " + model + " -p 'the quick brown fox jumps' --ctx 4");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("tokens but the context holds 4"), std::string::npos) << r.err;
  r = run_tern_split("run " + model + " -n 3");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("a prompt is required"), std::string::npos) << r.err;
  r = run_tern_split("run " + model + " -p hi --temp -1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--temp"), std::string::npos) << r.err;
  r = run_tern_split("run " + model + " -p hi --kv-dtype int3");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_tern_split("run " + model + " -p hi --ctx 100000");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("exceeds the model's context of 64"), std::string::npos) << r.err;
  r = run_tern_split("run " + kData + "/golden/qwen2_gguf/model.gguf -p hi");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--tokenizer"), std::string::npos) << r.err;
  r = run_tern_split("run " + model + " -p hi --draft " + model + " --lookup 2");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not both"), std::string::npos) << r.err;
  r = run_tern_split("run " + model + " -p hi --draft " + dir + "/no-such-model");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  // A tokenizer whose ids exceed the model's vocabulary is named, not run.
  r = run_tern_split("run " + kData + "/golden/v3_tiny --tokenizer " + model +
                     " -p 'the lazy dog'");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("beyond the model's vocabulary"), std::string::npos) << r.err;
  for (const auto& e : {r.err})
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 1) << "one line: " << e;
  fs::remove_all(dir);
}
