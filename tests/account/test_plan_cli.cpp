// End-to-end: the real `tern plan` binary, its JSON, its tables, and its errors (message on
// stderr, non-zero exit) for unknown hardware, negative or malformed counts, bad configs.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

struct CliRun {
  int code = -1;
  std::string out;  // stdout and stderr together
};

CliRun run_tern(const std::string& args) {
  const std::string cmd = std::string(TERN_BINARY) + " " + args + " 2>&1";
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string cfg(const char* name) {
  return std::string(TERN_TEST_DATA) + "/model/configs/" + name;
}

const std::string kV3Train = "plan train --config " + cfg("deepseek_v3.json") +
                             " --tokens 14.8T --hardware h800 --gpus 2048 --mfu 0.39"
                             " --precision fp8 --seq 4096 --pp 16 --ep 64";

}  // namespace

TEST(PlanCli, V3TrainJsonWithin5Percent) {
  const CliRun r = run_tern(kV3Train + " --target-gpu-hours 2664K --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const double gpuh = j["stages"][0]["gpu_hours"].get<double>();
  EXPECT_LT(std::abs(gpuh / 2664e3 - 1), 0.05) << gpuh;
  EXPECT_LT(std::abs(j["stages"][0]["dollars"].get<double>() / 5.328e6 - 1), 0.05);
  EXPECT_NEAR(j["implied"]["mfu_bf16_basis"].get<double>(), 0.4066, 0.002);
  EXPECT_TRUE(j["memory_per_gpu"]["fits"].get<bool>());
  EXPECT_EQ(j["stages"][0]["energy_source"].get<std::string>().rfind("estimate", 0), 0u);
}

TEST(PlanCli, V3WholeTableWithStagesFileAndFlags) {
  const CliRun file = run_tern(kV3Train + " --stages " + std::string(TERN_TEST_DATA) +
                               "/account/deepseek_v3_stages.json --json");
  ASSERT_EQ(file.code, 0) << file.out;
  const nlohmann::json j = nlohmann::json::parse(file.out);
  EXPECT_EQ(j["stages"].size(), 4u);
  EXPECT_LT(std::abs(j["total"]["gpu_hours"].get<double>() / 2788e3 - 1), 0.05);
  EXPECT_LT(std::abs(j["total"]["dollars"].get<double>() / 5.576e6 - 1), 0.05);

  const CliRun flags =
      run_tern(kV3Train +
               " --stage context-32k:62.91B:32768 --stage context-128k:62.91B:131072"
               " --stage post-training:gpu-hours=5K");
  ASSERT_EQ(flags.code, 0) << flags.out;
  for (const char* needle :
       {"pre-training", "context-128k", "post-training", "total", "$5.", "MFU", "fits", "estimate"})
    EXPECT_NE(flags.out.find(needle), std::string::npos) << needle << "\n" << flags.out;
}

TEST(PlanCli, ServeTableAndJson) {
  const CliRun t = run_tern("plan serve --config " + cfg("deepseek_v3.json") +
                            " --hardware h100 --gpus 8 --quant fp8 --context 32768 --batch 64");
  ASSERT_EQ(t.code, 0) << t.out;
  for (const char* needle : {"weights (fp8)", "MLA latent", "full K/V", "crossover", "per M"})
    EXPECT_NE(t.out.find(needle), std::string::npos) << needle << "\n" << t.out;
  const CliRun j = run_tern("plan serve --config " + cfg("r1_distill_qwen_1_5b.json") +
                            " --hardware cpu --bandwidth 50 --peak-bf16-tflops 1 --memory-gb 32"
                            " --power-w 100 --quant int4 --json");
  ASSERT_EQ(j.code, 0) << j.out;
  const nlohmann::json s = nlohmann::json::parse(j.out);
  EXPECT_TRUE(s["fits"].get<bool>());
  EXPECT_EQ(s["hardware"]["name"], "cpu");
  // 1.78B params: active weights ~1.0 GB in q4_0 -> at most ~50 tokens/s at 50 GB/s.
  EXPECT_GT(s["decode_batch1"]["tokens_per_second"].get<double>(), 20);
  EXPECT_LT(s["decode_batch1"]["tokens_per_second"].get<double>(), 60);
}

TEST(PlanCli, HardwareList) {
  const CliRun r = run_tern("plan hardware --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 5u);
}

TEST(PlanCli, BadInputsFailClearly) {
  const std::string v3 = " --config " + cfg("deepseek_v3.json");
  struct Case {
    std::string args, needle;
  };
  const Case cases[] = {
      {"plan train" + v3 + " --tokens 14.8T --hardware h900 --mfu 0.4", "'h900'"},
      {"plan serve" + v3 + " --hardware tpu", "'tpu'"},
      {"plan train" + v3 + " --tokens=-5T --hardware h800 --mfu 0.4", "negative"},
      {"plan train" + v3 + " --tokens 14.8X --hardware h800 --mfu 0.4", "14.8X"},
      {"plan train" + v3 + " --tokens 14.8T --hardware h800", "--mfu"},
      {"plan train" + v3 + " --tokens 14.8T --hardware h800 --mfu 3", "--mfu"},
      {"plan train" + v3 + " --tokens 1T --hardware h800 --mfu 0.4 --stage bad", "--stage"},
      {"plan train" + v3 + " --tokens 1T --hardware h800 --mfu 0.4 --gpus 0", "--gpus"},
      {"plan train" + v3 + " --tokens 1T --hardware h800 --mfu 0.4 --gpus 8 --pp 3", "--pp"},
      {"plan serve" + v3 + " --hardware h100 --quant int3", "int3"},
      {"plan serve" + v3 + " --hardware h100 --context=-1", "--context"},
      {"plan train --config /nonexistent/config.json --tokens 1T --hardware h800 --mfu 0.4",
       "nonexistent"},
  };
  for (const Case& c : cases) {
    const CliRun r = run_tern(c.args);
    EXPECT_NE(r.code, 0) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
}

TEST(PlanCli, ConfigMissingFieldNamesIt) {
  std::ifstream in(cfg("deepseek_v3.json"));
  nlohmann::json j = nlohmann::json::parse(in);
  j.erase("hidden_size");
  const auto path = std::filesystem::temp_directory_path() / "tern_plan_missing_field.json";
  std::ofstream(path) << j.dump();
  const CliRun r =
      run_tern("plan train --config " + path.string() + " --tokens 1T --hardware h800 --mfu 0.4");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("hidden_size"), std::string::npos) << r.out;
  std::filesystem::remove(path);
}

TEST(PlanCli, LedgerLinesPerStage) {
  const auto path = std::filesystem::temp_directory_path() / "tern_plan_ledger_test.jsonl";
  std::filesystem::remove(path);
  const CliRun r =
      run_tern(kV3Train + " --stage post-training:gpu-hours=5K --ledger " + path.string());
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream in(path);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["stage"], "plan-train:pre-training");
  EXPECT_TRUE(lines[0]["planned"].get<bool>());
  EXPECT_NEAR(lines[1]["device_hours"].get<double>(), 5000, 1e-6);
  EXPECT_NEAR(lines[1]["dollars"].get<double>(), 10000, 1e-6);
  std::filesystem::remove(path);
}
