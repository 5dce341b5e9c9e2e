// docs/cli.md, "errors": a config whose values overflow the arithmetic is refused with exit 1 and
// a message naming the field, never printed as a negative count. These depend on the checked
// config validation in src/model/config.cpp (caps and overflow-checked products).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"

using tern::test::run_tern_split;

namespace {

std::string config_with(const nlohmann::json& changes, const std::string& name) {
  std::ifstream in(std::string(TERN_TEST_DATA) + "/model/configs/deepseek_v3.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j.update(changes);
  const std::string path = tern::test::temp_dir("config_limits_" + name) + "/config.json";
  std::ofstream(path) << j.dump();
  return path;
}

}  // namespace

TEST(CliConfigLimits, HugeSizesAreRefusedNamingTheField) {
  const std::string path =
      config_with({{"hidden_size", 1e10}, {"intermediate_size", 1e10}}, "huge");
  for (const std::string args : {"info --config ", "info --json --config "}) {
    const auto r = run_tern_split(args + path);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("hidden_size"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("-"), std::string::npos) << "no negative counts:\n" << r.out;
  }
}

TEST(CliConfigLimits, VocabBeyondInt64IsNamedNotWrapped) {
  const std::string path = config_with({{"vocab_size", 1e19}}, "vocab");
  const auto r = run_tern_split("info --config " + path);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("vocab_size"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("-8446744073709551616"), std::string::npos) << r.err;
}
