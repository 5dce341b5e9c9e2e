// `tern eval --task` end to end on a small random chat model: the JSON report's keys and ranges,
// determinism under --seed, the checking plumbing (a regex every non-empty answer matches scores
// near 1, an impossible one 0), and bad task files named by line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"
#include "tests/e2e/tiny_chat_model.h"

using tern::test::run_tern_split;

TEST(CliEval, ReportsAccuracyFromTheRuleChecks) {
  const std::string dir = tern::test::make_chat_model("eval", tern::test::kChatTemplate);
  const std::string model = dir + "/model";
  const std::string base = "eval " + model + " --exact -n 12 --json --parallel 4 ";
  const auto a = run_tern_split(base + "--task arithmetic --limit 6 --samples 3 --temp 1 --seed 5");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const nlohmann::json j = nlohmann::json::parse(a.out);
  for (const char* key : {"accuracy", "majority_accuracy", "pass_at_k", "format_rate",
                          "mean_response_tokens", "tokens_per_s"})
    ASSERT_TRUE(j.contains(key)) << key << " in " << a.out;
  EXPECT_EQ(j["problems"], 6);
  EXPECT_EQ(j["samples_per_problem"], 3);
  EXPECT_GE(j["pass_at_k"].get<double>(), j["accuracy"].get<double>());
  EXPECT_GT(j["mean_response_tokens"].get<double>(), 0);
  EXPECT_LE(j["mean_response_tokens"].get<double>(), 12);
  // The job's account: every prompt and generated token, their FLOPs, time and energy.
  ASSERT_TRUE(j.contains("ledger")) << a.out;
  EXPECT_EQ(j["ledger"]["stage"], "eval:arithmetic");
  EXPECT_GT(j["ledger"]["flops"].get<double>(), 0);
  EXPECT_GT(j["ledger"]["tokens"].get<double>(),
            18 * j["mean_response_tokens"].get<double>() - 1e-9);
  EXPECT_GT(j["ledger"]["energy_joules"].get<double>(), 0);
  const auto again =
      run_tern_split(base + "--task arithmetic --limit 6 --samples 3 --temp 1 --seed 5");
  EXPECT_EQ(nlohmann::json::parse(again.out)["mean_response_tokens"], j["mean_response_tokens"])
      << "seeded sampling repeats";

  std::ofstream(dir + "/any.jsonl")
      << R"({"prompt":"say something","answer":"\\S","check":"regex"})"
      << "\n"
      << R"({"prompt":"and more","answer":"\\S","check":"regex"})"
      << "\n";
  std::ofstream(dir + "/none.jsonl")
      << R"({"prompt":"say something","answer":"^zzzz$","check":"regex"})"
      << "\n";
  const auto any = run_tern_split(base + "--task " + dir + "/any.jsonl --temp 0");
  ASSERT_EQ(any.exit_code, 0) << any.err;
  EXPECT_EQ(nlohmann::json::parse(any.out)["accuracy"], 1.0) << any.out;
  const auto none = run_tern_split(base + "--task " + dir + "/none.jsonl --temp 0");
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(nlohmann::json::parse(none.out)["accuracy"], 0.0);

  std::ofstream(dir + "/bad.jsonl") << R"({"prompt":"p","answer":"1"})"
                                    << "\n{oops\n";
  const auto bad = run_tern_split(base + "--task " + dir + "/bad.jsonl");
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find("line 2"), std::string::npos) << bad.err;
  const auto missing = run_tern_split(base + "--task " + dir + "/nope.jsonl");
  EXPECT_NE(missing.exit_code, 0);
  std::filesystem::remove_all(dir);
}

TEST(CliEval, PerplexityOverATextFile) {
  const std::string dir = tern::test::make_chat_model("eval_ppl", tern::test::kChatTemplate);
  {
    std::ofstream text(dir + "/text.txt");
    for (int i = 0; i < 40; ++i)
      text << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  const std::string base = "eval " + dir + "/model --data " + dir + "/text.txt --json ";
  const auto a = run_tern_split(base + "--ctx 64 --stride 32 --exact");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const nlohmann::json j = nlohmann::json::parse(a.out);
  EXPECT_GT(j["perplexity"].get<double>(), 1.0);
  EXPECT_EQ(j["scored"].get<int64_t>() + 1, j["tokens"].get<int64_t>()) << "each target once";
  EXPECT_GT(j["windows"].get<int64_t>(), 1);
  // A random model over a 320-token vocabulary: perplexity near the vocabulary size.
  EXPECT_LT(j["perplexity"].get<double>(), 2000.0);
  const auto b = run_tern_split(base + "--ctx 64 --stride 32 --exact");
  EXPECT_EQ(nlohmann::json::parse(b.out)["perplexity"], j["perplexity"]);
  const auto fast = run_tern_split(base + "--ctx 64 --stride 32");
  ASSERT_EQ(fast.exit_code, 0) << fast.err;
  EXPECT_NEAR(
      nlohmann::json::parse(fast.out)["perplexity"].get<double>() / j["perplexity"].get<double>(),
      1.0, 0.05)
      << "the serving kernels measure nearly the same";

  // Against itself: no divergence.
  const auto self = run_tern_split(base + "--ctx 64 --stride 32 --exact --ref " + dir + "/model");
  ASSERT_EQ(self.exit_code, 0) << self.err;
  const nlohmann::json sj = nlohmann::json::parse(self.out);
  EXPECT_EQ(sj["kl_mean"], 0.0);
  EXPECT_EQ(sj["top1_agreement"], 1.0);
  EXPECT_EQ(sj["delta_perplexity"], 0.0);
  EXPECT_EQ(run_tern_split("eval " + dir + "/model --json").exit_code, 2) << "--task or --data";
  EXPECT_EQ(run_tern_split(base + "--task arithmetic").exit_code, 2) << "not both";
  EXPECT_EQ(run_tern_split(base + "--ctx 64 --stride 65").exit_code, 1);
  std::ofstream(dir + "/tiny.txt") << "";
  EXPECT_EQ(run_tern_split("eval " + dir + "/model --data " + dir + "/tiny.txt").exit_code, 1);
  std::filesystem::remove_all(dir);
}

// `tern eval --imatrix` then `tern quantize`: int4 with the importance matrix, int8 and fp8
// directories that `tern eval` and `tern run` load, measured against the original with --ref;
// bad input refused with exit codes and nothing written.
TEST(CliQuantize, ImatrixQuantizeThenMeasure) {
  const std::string dir = tern::test::make_chat_model("quantize", tern::test::kChatTemplate);
  {
    std::ofstream text(dir + "/calib.txt");
    for (int i = 0; i < 30; ++i)
      text << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  const std::string model = dir + "/model";
  const auto im = run_tern_split("eval " + model + " --data " + dir +
                                 "/calib.txt --ctx 64 --stride 64 --imatrix " + dir + "/im.st");
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_TRUE(std::filesystem::exists(dir + "/im.st"));
  for (const std::string type : {"int4", "int8", "fp8"}) {
    const std::string out = dir + "/" + type;
    const std::string extra =
        type == "int4"   ? " --block 32 --keep-hi router,head:int8 --imatrix " + dir + "/im.st"
        : type == "int8" ? " --block 32 --keep-hi none"
                         : "";
    const auto q = run_tern_split("quantize " + model + " " + out + " --type " + type + extra);
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(q.out.find("quantized"), std::string::npos) << q.out;
    const auto e = run_tern_split("eval " + out + " --data " + dir +
                                  "/calib.txt --ctx 64 --stride 64 --json --exact --ref " + model);
    ASSERT_EQ(e.exit_code, 0) << e.err;
    const nlohmann::json j = nlohmann::json::parse(e.out);
    EXPECT_LT(std::fabs(j["delta_perplexity"].get<double>()), type == "int4" ? 0.1 : 0.02) << type;
    EXPECT_GE(j["kl_mean"].get<double>(), 0.0);
    const auto r = run_tern_split("run " + out + " -p 'the quick' -n 4 --temp 0");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  // The original's distributions saved once stand in for it.
  const auto save =
      run_tern_split("eval " + model + " --data " + dir +
                     "/calib.txt --ctx 64 --stride 64 --exact --save-logits " + dir + "/ref.lgt");
  ASSERT_EQ(save.exit_code, 0) << save.err;
  const std::string measure =
      "eval " + dir + "/int4 --data " + dir + "/calib.txt --ctx 64 --stride 64 --json --exact ";
  const auto by_model = run_tern_split(measure + "--ref " + model);
  const auto by_file = run_tern_split(measure + "--ref-logits " + dir + "/ref.lgt");
  ASSERT_EQ(by_file.exit_code, 0) << by_file.err;
  const double kl_model = nlohmann::json::parse(by_model.out)["kl_mean"].get<double>();
  EXPECT_NEAR(nlohmann::json::parse(by_file.out)["kl_mean"].get<double>(), kl_model,
              0.02 * kl_model + 1e-5);
  const auto wrong = run_tern_split("eval " + dir + "/int4 --data " + dir +
                                    "/calib.txt --ctx 32 --ref-logits " + dir + "/ref.lgt");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("--ctx"), std::string::npos) << wrong.err;

  const auto again = run_tern_split("quantize " + model + " " + dir + "/int8 --type int8");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(run_tern_split("quantize " + model + " " + dir + "/x --type int3").exit_code, 2);
  const auto bad_keep =
      run_tern_split("quantize " + model + " " + dir + "/y --type int4 --keep-hi attention");
  EXPECT_EQ(bad_keep.exit_code, 1);
  EXPECT_NE(bad_keep.err.find("--keep-hi"), std::string::npos) << bad_keep.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/y"));
  const auto bad_raise =
      run_tern_split("quantize " + model + " " + dir + "/y --type fp8 --keep-hi head:int8");
  EXPECT_EQ(bad_raise.exit_code, 1);
  EXPECT_NE(bad_raise.err.find("integer types mix"), std::string::npos) << bad_raise.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/y"));
  std::ofstream(dir + "/not_im.st") << "garbage";
  const auto bad_im = run_tern_split("quantize " + model + " " + dir +
                                     "/z --type int4 --block 32 "
                                     "--imatrix " +
                                     dir + "/not_im.st");
  EXPECT_EQ(bad_im.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir + "/z"));
  std::filesystem::remove_all(dir);
}

// `tern prune`: routing statistics over calibration text, half the experts kept (merged), the
// pruned model runs and is measured against the original; the statistics reused and drawn;
// refusals before anything is written.
TEST(CliPrune, CalibratePruneMergeMeasureAndRefuse) {
  const std::string dir = tern::test::make_chat_model("prune", tern::test::kChatTemplate);
  const std::string model = dir + "/model";
  {  // 8 experts in 2 groups of 4, so noaux_tc routing can lose half of each group
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(model + "/config.json"));
    cfg["n_group"] = 2;
    cfg["topk_group"] = 1;
    std::ofstream(model + "/config.json") << cfg.dump();
    std::ofstream text(dir + "/calib.txt");
    for (int i = 0; i < 30; ++i)
      text << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  const std::string out = dir + "/half";
  const auto p =
      run_tern_split("prune " + model + " " + out + " --experts-keep 0.5 --calib " + dir +
                     "/calib.txt --ctx 64 --per-layer --merge --stats-out " + dir + "/stats.json");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("kept 4 of 8 routed experts"), std::string::npos) << p.out;
  const nlohmann::json cfg = nlohmann::json::parse(std::ifstream(out + "/config.json"));
  EXPECT_EQ(cfg["n_routed_experts"], 4);
  const auto e = run_tern_split("eval " + out + " --data " + dir +
                                "/calib.txt --ctx 64 --json --exact --ref " + model);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_LT(nlohmann::json::parse(e.out)["top1_agreement"].get<double>(), 1.0);
  EXPECT_EQ(run_tern_split("run " + out + " -p 'the quick' -n 4 --temp 0").exit_code, 0);

  const auto again = run_tern_split("prune " + model + " " + dir +
                                    "/most --experts-keep 0.75 --stats " + dir + "/stats.json");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("kept 6 of 8"), std::string::npos) << again.out;
  const auto info = run_tern_split("info --routing-stats " + dir + "/stats.json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("layer   1"), std::string::npos) << info.out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/stats.svg"));

  const auto few = run_tern_split("prune " + model + " " + dir +
                                  "/few --experts-keep 0.1 --stats " + dir + "/stats.json");
  EXPECT_EQ(few.exit_code, 1);
  EXPECT_NE(few.err.find("num_experts_per_tok"), std::string::npos) << few.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/few"));
  std::ofstream(dir + "/short.txt") << "too short";
  const auto shortc =
      run_tern_split("prune " + model + " " + dir + "/s --calib " + dir + "/short.txt --ctx 64");
  EXPECT_EQ(shortc.exit_code, 1);
  EXPECT_NE(shortc.err.find("fewer than one window"), std::string::npos) << shortc.err;
  std::ofstream(dir + "/other.json")
      << R"({"format": "tern-routing-stats", "version": 1, "tokens": 5, "layers": [{"layer": 1, "counts": [1, 2], "weights": [1.0, 2.0]}]})";
  const auto other =
      run_tern_split("prune " + model + " " + dir + "/o --stats " + dir + "/other.json");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("another model"), std::string::npos) << other.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/o"));
  std::filesystem::remove_all(dir);
}
