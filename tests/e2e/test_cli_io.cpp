// docs/cli.md, "files, stdin and stdout", "ids", "model paths" and "outputs": `-` means stdin or
// stdout, ids come in every shape a pipeline produces, a file inside a model directory stands
// for the directory, and no command replaces an output without --force or leaves a half-made one.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/npy.h"
#include "tests/e2e/cli_runner.h"

using tern::test::run_tern_split;
using tern::test::SplitResult;
namespace fs = std::filesystem;

namespace {

const std::string kData = TERN_TEST_DATA;
const std::string kTiny = kData + "/golden/qwen2_tiny";
const std::string kDs = std::string(TERN_TOK_DATA) + "/deepseek_v3";
const std::string kCorpus = kData + "/tokenizer/data/kjv_excerpt.txt";

std::vector<float> logits_of(const std::string& file) {
  const tern::Tensor t = tern::formats::read_npy(file);
  return std::vector<float>(t.data_as<float>(), t.data_as<float>() + t.numel());
}

// A 258-token tokenizer (2 specials + 256 bytes), so its ids fit the tiny models' 256-token
// vocabulary for byte-level text... except the bytes above 253, which plain text never uses.
std::string tiny_tokenizer(const std::string& dir) {
  const std::string tok = dir + "/tok";
  const auto r =
      run_tern_split("tokenizer train --corpus " + kCorpus + " --vocab-size 258 --out " + tok);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return tok;
}

}  // namespace

TEST(CliIo, IdsInEveryForm) {
  const std::string dir = tern::test::temp_dir("io_ids");
  auto run = [&](const std::string& ids, const std::string& input, const std::string& name) {
    const auto r = run_tern_split(
        "logits " + kTiny + " --ids " + ids + " --out " + dir + "/" + name + ".npy", input);
    EXPECT_EQ(r.exit_code, 0) << ids << "\n" << r.err;
    return logits_of(dir + "/" + name + ".npy");
  };
  const auto want = run("5,6,7", "", "list");
  EXPECT_EQ(run("'5 6 7'", "", "spaces"), want);
  EXPECT_EQ(run("'[5, 6, 7]'", "", "json"), want);
  EXPECT_EQ(run("-", "5\n6\n7\n", "stdin_lines"), want);
  EXPECT_EQ(run("-", "[5,6,7]\n", "stdin_json"), want);
  EXPECT_EQ(run("-", "{\"ids\":[5,6,7],\"tokens\":[\"a\",\"b\",\"c\"]}\n", "stdin_object"), want);
  std::ofstream(dir + "/ids.txt") << "5, 6,\n7\n";
  EXPECT_EQ(run("@" + dir + "/ids.txt", "", "file"), want);
  // A long list that would not fit in a command line's argument limit comes through stdin.
  std::string many;
  for (int i = 0; i < 100; ++i) many += std::to_string(i % 200) + "\n";
  EXPECT_EQ(run("-", many, "many").size(), size_t(100 * 256));
  // More than one sequence, or a broken file, is exit 1 naming the source.
  const auto two =
      run_tern_split("logits " + kTiny + " --ids - --out " + dir + "/two.npy", "[1,2]\n[3,4]\n");
  EXPECT_EQ(two.exit_code, 1) << two.err;
  EXPECT_NE(two.err.find("more than one sequence"), std::string::npos) << two.err;
  std::ofstream(dir + "/bad.json") << "[1, 2,";
  const auto bad =
      run_tern_split("logits " + kTiny + " --ids @" + dir + "/bad.json --out " + dir + "/bad.npy");
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find(dir + "/bad.json"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("json.exception"), std::string::npos) << bad.err;
}

TEST(CliIo, TokenizePipesIntoLogitsAndLogitsWritesStdout) {
  const std::string dir = tern::test::temp_dir("io_pipe");
  const std::string tok = tiny_tokenizer(dir);
  const std::string cmd = std::string(TERN_BINARY) + " tokenize " + tok +
                          " --no-special <<< hi | " + TERN_BINARY + " logits " + kTiny +
                          " --ids - --out - > " + dir + "/piped.npy";
  ASSERT_EQ(std::system(("bash -c '" + cmd + "'").c_str()), 0);
  const auto ids = run_tern_split("tokenize " + tok + " --no-special -p hi");
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  const auto r =
      run_tern_split("logits " + kTiny + " --ids '" + ids.out + "' --out " + dir + "/direct.npy");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(logits_of(dir + "/piped.npy"), logits_of(dir + "/direct.npy"));
}

TEST(CliIo, TokenizeTakesTextFromFlagFileOrStdin) {
  const std::string dir = tern::test::temp_dir("io_tokenize");
  const auto from_flag = run_tern_split("tokenize " + kDs + " -p 'Hello, world!'");
  EXPECT_EQ(from_flag.out, "[0,19923,14,2058,3]\n") << from_flag.err;
  std::ofstream(dir + "/in.txt") << "Hello, world!\n";
  EXPECT_EQ(run_tern_split("tokenize " + kDs + " --file " + dir + "/in.txt").out, from_flag.out);
  EXPECT_EQ(run_tern_split("tokenize " + kDs + " --file -", "Hello, world!\n").out, from_flag.out);
  EXPECT_EQ(run_tern_split("tokenize " + kDs, "Hello, world!\n").out, from_flag.out);
  // On a terminal with no input given, it says what it waits for (script(1) gives it a tty).
  const std::string tty = "script -qec '" + std::string(TERN_BINARY) + " tokenize " + kDs +
                          "' /dev/null < /dev/null > " + dir + "/tty.txt 2>&1";
  if (std::system(tty.c_str()) == 0 || fs::exists(dir + "/tty.txt")) {
    EXPECT_NE(tern::test::slurp(dir + "/tty.txt").find("one per line"), std::string::npos)
        << tern::test::slurp(dir + "/tty.txt");
  }
}

TEST(CliIo, ConfigFromStdin) {
  std::ifstream in(kData + "/model/configs/deepseek_v3.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto r = run_tern_split("info --json --config -", text);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["parameters"]["total"].get<int64_t>(), 671026419200);
}

TEST(CliIo, ModelPathsMayNameAFileInsideTheDirectory) {
  const std::string dir = tern::test::temp_dir("io_paths");
  EXPECT_EQ(run_tern_split("tokenize " + kDs + "/tokenizer.json -p hi").exit_code, 0);
  EXPECT_EQ(run_tern_split("info " + kTiny + "/config.json").exit_code, 0);
  EXPECT_EQ(run_tern_split("info " + kTiny + "/model.safetensors").exit_code, 0);
  EXPECT_EQ(
      run_tern_split("info " + kData + "/golden/v3_tiny/model.safetensors.index.json").exit_code,
      0);
  const auto r =
      run_tern_split("logits " + kTiny + "/config.json --ids 1,2 --out " + dir + "/a.npy");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // plan --config accepts the .gguf that info accepts.
  const std::string gguf = kData + "/golden/qwen2_gguf/model.gguf";
  EXPECT_EQ(run_tern_split("info --config " + gguf).exit_code, 0);
  const auto p = run_tern_split("plan serve --config " + gguf + " --hardware h100 --context 64");
  EXPECT_EQ(p.exit_code, 0) << p.err;
  // Anything else names the file and what was expected.
  const auto bad = run_tern_split("info /etc/passwd");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("/etc/passwd: not a model"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("/etc/config.json"), std::string::npos) << bad.err;
}

TEST(CliIo, OutputsAreNeverReplacedWithoutForce) {
  const std::string dir = tern::test::temp_dir("io_force");
  const std::string cfg = kData + "/golden/v3_tiny/config.json", ckpt = dir + "/ckpt";
  ASSERT_EQ(run_tern_split("init --config " + cfg + " --out " + ckpt).exit_code, 0);
  const auto again = run_tern_split("init --config " + cfg + " --out " + ckpt + " --seed 7");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;
  const auto forced =
      run_tern_split("init --config " + cfg + " --out " + ckpt + " --seed 7 --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  for (const auto& e : fs::directory_iterator(dir))  // no temporary or old folder left behind
    EXPECT_EQ(e.path().filename().string(), "ckpt");

  const std::string npy = dir + "/x.npy";
  ASSERT_EQ(run_tern_split("logits " + kTiny + " --ids 1 --out " + npy).exit_code, 0);
  EXPECT_EQ(run_tern_split("logits " + kTiny + " --ids 1 --out " + npy).exit_code, 1);
  EXPECT_EQ(run_tern_split("logits " + kTiny + " --ids 1 --out " + npy + " --force").exit_code, 0);

  const std::string tok = dir + "/tok";
  const std::string train =
      "tokenizer train --corpus " + kCorpus + " --vocab-size 300 --out " + tok;
  ASSERT_EQ(run_tern_split(train).exit_code, 0);
  EXPECT_EQ(run_tern_split(train).exit_code, 1);
  EXPECT_EQ(run_tern_split(train + " --force").exit_code, 0);
}

TEST(CliIo, AFailedInitLeavesNothing) {
  const std::string dir = tern::test::temp_dir("io_failed_init");
  // A config the writer rejects (fp8 on a dense model) must not leave an empty folder.
  const auto r =
      run_tern_split("init --config " + kTiny + "/config.json --out " + dir + "/out --dtype fp8");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(fs::is_empty(dir)) << "left behind: " << fs::directory_iterator(dir)->path();
  // A write that fails half way (file size limit; SIGXFSZ ignored so write() reports EFBIG)
  // leaves neither the output nor the temporary folder, and the old checkpoint survives.
  const std::string cfg = kData + "/golden/v3_tiny/config.json", out = dir + "/ckpt";
  ASSERT_EQ(run_tern_split("init --config " + cfg + " --out " + out).exit_code, 0);
  const auto before = fs::file_size(out + "/config.json");
  const auto half = run_tern_split("init --config " + cfg + " --out " + out + " --force --seed 3",
                                   "", "trap '' XFSZ; ulimit -f 16;");
  EXPECT_EQ(half.exit_code, 1) << half.err;
  EXPECT_EQ(half.err.rfind("tern: ", 0), 0u) << half.err;
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path(), fs::path(out));
  EXPECT_EQ(fs::file_size(out + "/config.json"), before);
}
