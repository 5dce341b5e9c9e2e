// Training time and cost on tiny figures (hand arithmetic beside each check), the stage
// grammar, and bad inputs. The DeepSeek-V3 table itself is in test_plan_model.cpp.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "account/train_plan.h"
#include "core/error.h"
#include "tiny.h"

using namespace tern;
using namespace tern::account;
using namespace tern::account::testing;

namespace {
// 6.6 MFLOP/s BF16 peak: at MFU 0.5 and 6600 FLOP/token (tiny_mla, seq 4, no MTP) a GPU
// trains exactly 500 tokens/s = 1.8M tokens per GPU-hour.
Hardware device() {
  Hardware h = tiny_device();
  h.bf16_tflops = 6.6e-6;
  return h;
}
TrainInputs inputs() {
  TrainInputs in;
  in.tokens = 3.6e6;
  in.seq = 4;
  in.gpus = 2;
  in.mfu = 0.5;
  in.price_per_gpu_hour = 3;
  in.pue = 1.5;
  in.include_mtp = false;
  return in;
}
}  // namespace

TEST(TrainPlan, TimeCostEnergyByHand) {
  const TrainPlan p = plan_training(tiny_mla(), device(), inputs());
  ASSERT_EQ(p.stages.size(), 1u);
  const StageResult& s = p.stages[0];
  EXPECT_DOUBLE_EQ(s.flops_per_token.total(), 6600);
  EXPECT_DOUBLE_EQ(s.flops, 3.6e6 * 6600);
  EXPECT_NEAR(s.gpu_hours, 2.0, 1e-12);     // 3.6M tokens / 1.8M per GPU-hour
  EXPECT_NEAR(s.days, 1.0 / 24, 1e-12);     // 2 GPU-hours on 2 GPUs
  EXPECT_NEAR(s.dollars, 6.0, 1e-12);       // 2 x $3
  EXPECT_NEAR(s.energy.kwh(), 0.3, 1e-12);  // 100 W x 2 GPUs x 3600 s x 1.5 = 1.08 MJ
  EXPECT_EQ(s.energy.source, EnergySource::estimate);
  EXPECT_NEAR(p.achieved_flops_per_gpu, 3.3e6, 1e-6);
}

TEST(TrainPlan, MfuInverse) {
  const Hardware h = device();
  EXPECT_NEAR(gpu_hours_for(3.6e6 * 6600, 0.5, h), 2.0, 1e-12);
  EXPECT_NEAR(mfu_for(3.6e6 * 6600, 2.0, h), 0.5, 1e-12);
  EXPECT_NEAR(mfu_for(3.6e6 * 6600, 4.0, h), 0.25, 1e-12);
}

TEST(TrainPlan, StagesAddUp) {
  TrainInputs in = inputs();
  in.extra_stages.push_back(parse_stage("post:gpu-hours=4"));
  in.extra_stages.push_back(parse_stage("long:1.8M:4:0.25"));  // half the MFU: 2 GPU-hours
  const TrainPlan p = plan_training(tiny_mla(), device(), in);
  ASSERT_EQ(p.stages.size(), 3u);
  EXPECT_TRUE(p.stages[1].given);
  EXPECT_DOUBLE_EQ(p.stages[1].gpu_hours, 4);
  EXPECT_NEAR(p.stages[2].gpu_hours, 2.0, 1e-12);
  EXPECT_NEAR(p.total.gpu_hours, 8.0, 1e-12);
  EXPECT_NEAR(p.total.dollars, 24.0, 1e-12);
  EXPECT_NEAR(p.total.tokens, 5.4e6, 1e-6);
  const nlohmann::json j = to_json(p);
  EXPECT_EQ(j["stages"].size(), 3u);
  EXPECT_NEAR(j["total"]["gpu_hours"].get<double>(), 8.0, 1e-12);
}

TEST(TrainPlan, StageGrammar) {
  TrainStage s = parse_stage("context-32k:62.9B:32768");
  EXPECT_EQ(s.name, "context-32k");
  EXPECT_DOUBLE_EQ(s.tokens, 62.9e9);
  EXPECT_EQ(s.seq, 32768);
  EXPECT_EQ(s.mfu, 0);
  s = parse_stage("ctx:tokens=1T,seq=128K,mfu=0.25");
  EXPECT_DOUBLE_EQ(s.tokens, 1e12);
  EXPECT_EQ(s.seq, 128000);
  EXPECT_DOUBLE_EQ(s.mfu, 0.25);
  s = parse_stage("post-training:gpu_hours=5K");
  EXPECT_DOUBLE_EQ(s.gpu_hours, 5000);
  for (const char* bad :
       {"nocolon", ":1T:4096", "x:1T", "x:1T:4096:0.3:9", "x:14.8X:4096", "x:tokens=1T,colour=red",
        "x:seq=4096", "x:-1T:4096", "x:1T:4096:2", "x:gpu-hours=0"}) {
    try {
      parse_stage(bad);
      FAIL() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::request) << bad;
      EXPECT_NE(std::string(e.what()).find("--stage"), std::string::npos) << e.what();
    }
  }
}

TEST(TrainPlan, StagesJson) {
  const auto list = stages_from_json(nlohmann::json::parse(R"({"stages": [
      {"name": "ctx", "tokens": "62.9B", "seq": 32768, "note": "1920 x 32768 x 1000"},
      {"name": "post", "gpu_hours": 5000}]})"),
                                     "s.json");
  ASSERT_EQ(list.size(), 2u);
  EXPECT_DOUBLE_EQ(list[0].tokens, 62.9e9);
  EXPECT_EQ(list[0].seq, 32768);
  EXPECT_DOUBLE_EQ(list[1].gpu_hours, 5000);
  EXPECT_THROW(stages_from_json(nlohmann::json::parse(R"([{"name": "x", "tokens": -5}])"), "s"),
               Error);
  EXPECT_THROW(stages_from_json(nlohmann::json::parse(R"({"x": 1})"), "s"), Error);
  try {
    stages_from_json(nlohmann::json::parse(R"([{"name": "x", "tokens": "14.8X"}])"), "f.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("f.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(stages_from_file("/nonexistent/stages.json"), Error);
}

TEST(TrainPlan, BadInputs) {
  auto expect_request = [](TrainInputs in, const char* flag) {
    try {
      plan_training(tiny_mla(), device(), in);
      FAIL() << flag;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::request);
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  TrainInputs in = inputs();
  in.tokens = -1;
  expect_request(in, "--tokens");
  in = inputs();
  in.gpus = 0;
  expect_request(in, "--gpus");
  in = inputs();
  in.mfu = 0;
  expect_request(in, "--mfu");
  in = inputs();
  in.mfu = 2;
  expect_request(in, "--mfu");
  in = inputs();
  in.precision = "fp4";
  expect_request(in, "--precision");
  in = inputs();
  in.pue = 0.5;
  expect_request(in, "--pue");
}
