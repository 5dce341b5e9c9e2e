// docs/cli.md, "numbers and units" and "progress": SI units (kB, MB, GB as powers of 1000), one
// lower-case dtype spelling, three significant digits a person reads at a glance, exact integers
// in --json, and no carriage-return progress in output that is not a terminal.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"

using tern::test::run_tern_split;

namespace {

const std::string kData = TERN_TEST_DATA;
const std::string kV3 = kData + "/model/configs/deepseek_v3.json";

void expect_no_binary_units(const std::string& text, const std::string& what) {
  for (const char* unit : {"KiB", "MiB", "GiB", "TiB", " KB"})
    EXPECT_EQ(text.find(unit), std::string::npos) << what << " prints " << unit << "\n" << text;
}

// Nothing a person has to count digits in: no run of 7+ digits outside a grouped 1,234,567.
void expect_glanceable(const std::string& text, const std::string& what) {
  static const std::regex long_run("(^|[^0-9,.])[0-9]{7,}");
  EXPECT_FALSE(std::regex_search(text, long_run)) << what << "\n" << text;
}

}  // namespace

TEST(CliOutput, InfoUsesSiUnitsAndShortForms) {
  const auto r = run_tern_split("info --config " + kV3);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("671B (671,026,419,200)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("70.3 kB (70,272 B"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1.34 TB"), std::string::npos) << r.out;  // bf16 weights, 2 x 671B
  expect_no_binary_units(r.out, "info --config");
  const auto j = run_tern_split("info --json --config " + kV3);
  EXPECT_EQ(nlohmann::json::parse(j.out)["weights_bytes_estimate"]["bf16"].get<int64_t>(),
            1342052838400);
}

TEST(CliOutput, DtypesAreSpelledInLowerCase) {
  for (const char* path : {"/golden/qwen2_gguf/model.gguf", "/golden/v3_fp8"}) {
    const auto r = run_tern_split("info " + kData + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_no_binary_units(r.out, path);
    static const std::regex upper_dtype("\\b(F32|F16|BF16|Q8_0|Q4_0|F8_E4M3)\\b");
    EXPECT_FALSE(std::regex_search(r.out, upper_dtype)) << path << "\n" << r.out;
  }
}

TEST(CliOutput, PlanNumbersReadAtAGlance) {
  const std::string base = "plan train --config " + kV3 + " --hardware h800 --gpus 2048 --mfu 0.39";
  const auto normal = run_tern_split(base + " --tokens 14.8T");
  ASSERT_EQ(normal.exit_code, 0) << normal.err;
  EXPECT_EQ(normal.out.find("0.261e24"), std::string::npos) << normal.out;
  EXPECT_TRUE(std::regex_search(normal.out, std::regex("[1-9]\\.[0-9]{2}e2[0-9] FLOP for 14.8T")))
      << normal.out;
  EXPECT_TRUE(std::regex_search(normal.out, std::regex("[0-9.]+M +[0-9]")))  // GPU-hours as 2.66M
      << normal.out;
  expect_glanceable(normal.out, "plan train 14.8T");
  expect_no_binary_units(normal.out, "plan train");
  const auto huge = run_tern_split(base + " --tokens 1e18");
  ASSERT_EQ(huge.exit_code, 0) << huge.err;
  EXPECT_EQ(huge.out.find("e15 tokens"), std::string::npos) << huge.out;
  expect_glanceable(huge.out, "plan train 1e18");
  const auto serve = run_tern_split("plan serve --config " + kV3 + " --hardware h100 --gpus 8");
  ASSERT_EQ(serve.exit_code, 0) << serve.err;
  expect_glanceable(serve.out, "plan serve");
  expect_no_binary_units(serve.out, "plan serve");
  // --json keeps the exact figures.
  const auto j = run_tern_split(base + " --tokens 14.8T --json");
  EXPECT_EQ(nlohmann::json::parse(j.out)["stages"][0]["tokens"].get<double>(), 14.8e12);
}

TEST(CliOutput, NoCarriageReturnsOffATerminal) {
  const std::string dir = tern::test::temp_dir("output_progress");
  const auto train =
      run_tern_split("tokenizer train --corpus " + kData +
                     "/tokenizer/data/kjv_excerpt.txt --vocab-size 600 --out " + dir + "/tok");
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto init = run_tern_split("init --config " + kData + "/golden/v3_tiny/config.json --out " +
                                   dir + "/ckpt");
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const auto logits = run_tern_split("logits " + dir + "/ckpt --ids 1,2,3 --out " + dir + "/x.npy");
  ASSERT_EQ(logits.exit_code, 0) << logits.err;
  for (const auto* r : {&train, &init, &logits}) {
    EXPECT_EQ(r->err.find('\r'), std::string::npos) << r->err;
    EXPECT_EQ(r->out.find('\r'), std::string::npos) << r->out;
  }
  EXPECT_NE(init.out.find(" kB"), std::string::npos) << init.out;  // size of what it wrote
}
