// Config parsing and the spec §14 closed-form figures for real DeepSeek / distill configs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/param_count.h"

using namespace tern;
using namespace tern::model;

namespace {
std::string cfg(const char* name) {
  return std::string(TERN_TEST_DATA) + "/model/configs/" + name;
}

ModelConfig v3_with(const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(cfg("deepseek_v3.json"));
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  return ModelConfig::from_json(j, "edited.json");
}

void expect_config_error(const std::function<void(nlohmann::json&)>& edit,
                         const std::string& field) {
  try {
    v3_with(edit);
    FAIL() << "expected a config error naming " << field;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("edited.json"), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Config, DeepSeekV3FiguresFromSpec) {
  const ModelConfig c = ModelConfig::from_file(cfg("deepseek_v3.json"));
  EXPECT_EQ(c.arch, Arch::deepseek_v3);
  EXPECT_TRUE(c.fp8_weights);
  EXPECT_EQ(c.topk_method, TopkMethod::noaux_tc);
  const ParamCounts p = count_parameters(c);
  EXPECT_EQ(p.attention_per_layer, 187107328);
  EXPECT_EQ(p.expert, 44040192);
  EXPECT_EQ(p.moe_total_per_layer, 11320164608);
  EXPECT_EQ(p.moe_active_per_layer, 398196992);
  EXPECT_EQ(p.total, 671026419200);
  EXPECT_NEAR(double(p.activated) / 1e9, 36.63, 0.01);
  EXPECT_NEAR(double(p.mtp_total) / 1e9, 11.61, 0.01);
  // MTP activated: attention + 2 norms + enorm/hnorm/shared_head.norm (3d) + eh_proj (2d^2) +
  // router (E d + E) + 8 routed + 1 shared expert; docs/accounting.md §8 spells out the sum.
  EXPECT_EQ(p.mtp_activated,
            187107328 + 2 * 7168 + 3 * 7168 + 2 * 7168 * 7168 + (256 * 7168 + 256) + 9 * 44040192);
  EXPECT_EQ(p.mtp_activated, 688100608);
  EXPECT_EQ(kv_cache_bytes_per_token(c), 70272);
  EXPECT_EQ(mha_equivalent_kv_bytes_per_token(c), 4997120);
  // Spec §5.3: 192^-0.5 * (1 + 0.1 ln 40)^2; tolerance = the spec's 10 printed digits.
  EXPECT_NEAR(c.softmax_scale(), 0.1352337789, 1e-10);
  EXPECT_DOUBLE_EQ(c.rope_cos_sin_scale(), 1.0);
}

TEST(Config, DeepSeekV2LiteAndV2FiguresFromSpec) {
  const ModelConfig lite = ModelConfig::from_file(cfg("deepseek_v2_lite.json"));
  EXPECT_EQ(lite.q_lora_rank, 0);
  EXPECT_EQ(count_parameters(lite).total, 15706484224);
  EXPECT_EQ(count_parameters(lite).attention_per_layer, 13763072);
  EXPECT_NEAR(double(count_parameters(lite).activated) / 1e9, 2.45, 0.01);
  EXPECT_EQ(kv_cache_bytes_per_token(lite), 31104);
  EXPECT_NEAR(lite.softmax_scale(), 0.1147213868, 1e-10);
  const ModelConfig v2 = ModelConfig::from_file(cfg("deepseek_v2.json"));
  EXPECT_EQ(v2.topk_method, TopkMethod::group_limited_greedy);
  EXPECT_EQ(count_parameters(v2).total, 235741434880);
  EXPECT_EQ(count_parameters(v2).moe_total_per_layer, 3822878720);
}

TEST(Config, DenseDistillFiguresFromSpec) {
  const ModelConfig q = ModelConfig::from_file(cfg("r1_distill_qwen_1_5b.json"));
  EXPECT_EQ(q.arch, Arch::qwen2);
  EXPECT_TRUE(q.attention_bias);
  EXPECT_EQ(q.head_dim, 128);
  EXPECT_EQ(count_parameters(q).total, 1777088000);
  EXPECT_EQ(kv_cache_bytes_per_token(q), 28672);
  const ModelConfig l = ModelConfig::from_file(cfg("r1_distill_llama_8b.json"));
  EXPECT_EQ(l.rope.type, RopeType::llama3);
  EXPECT_EQ(count_parameters(l).total, 8030261248);
  EXPECT_EQ(kv_cache_bytes_per_token(l), 131072);
}

TEST(Config, BadFieldsAreNamed) {
  expect_config_error([](auto& j) { j.erase("kv_lora_rank"); }, "kv_lora_rank");
  expect_config_error([](auto& j) { j["model_type"] = "gpt2"; }, "model_type");
  expect_config_error([](auto& j) { j["topk_method"] = "random"; }, "topk_method");
  expect_config_error([](auto& j) { j["n_group"] = 7; }, "n_group");
  expect_config_error([](auto& j) { j["topk_group"] = 9; }, "topk_group");
  expect_config_error([](auto& j) { j["num_experts_per_tok"] = 300; }, "num_experts_per_tok");
  expect_config_error([](auto& j) { j["hidden_size"] = "big"; }, "hidden_size");
  expect_config_error([](auto& j) { j["hidden_size"] = -5; }, "hidden_size");
  expect_config_error([](auto& j) { j["rope_scaling"]["type"] = "ntk"; }, "rope_scaling");
  expect_config_error([](auto& j) { j["quantization_config"]["quant_method"] = "gptq"; },
                      "quant_method");
  expect_config_error([](auto& j) { j["scoring_func"] = "softmax"; }, "scoring_func");
  expect_config_error([](auto& j) { j["qk_rope_head_dim"] = 63; }, "qk_rope_head_dim");
}

TEST(Config, MissingAndInvalidFiles) {
  EXPECT_THROW(ModelConfig::from_file("/nonexistent/config.json"), Error);
  try {
    ModelConfig::from_json(nlohmann::json::array(), "x.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
  }
}
