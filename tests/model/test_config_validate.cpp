// ModelConfig::validate(): one semantically broken (but well-formed) config per rule, each
// refused as a config Error naming the file, the field, the value and the rule — from
// config.json and from GGUF metadata alike — and never a crash or a silent acceptance.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/config.h"
#include "model/gguf_source.h"
#include "model/param_count.h"

using namespace tern;
using namespace tern::model;
using nlohmann::json;

namespace {

json read_json(const std::string& name) {
  std::ifstream in(std::string(TERN_TEST_DATA) + "/model/configs/" + name);
  return json::parse(in);
}

// Applies `edit` to a copy of config `base` and expects a config Error whose message holds
// every needle (field, value and rule) and the source name.
void expect_refused(const std::string& base, const std::function<void(json&)>& edit,
                    std::initializer_list<std::string> needles) {
  json j = read_json(base);
  edit(j);
  try {
    ModelConfig::from_json(j, "broken.json");
    ADD_FAILURE() << "accepted: " << j.dump();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::config) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    EXPECT_NE(msg.find("broken.json: "), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << n << " in " << msg;
  }
}

void v3(const std::function<void(json&)>& edit, std::initializer_list<std::string> needles) {
  expect_refused("deepseek_v3.json", edit, needles);
}
void qwen(const std::function<void(json&)>& edit, std::initializer_list<std::string> needles) {
  expect_refused("r1_distill_qwen_1_5b.json", edit, needles);
}
void llama(const std::function<void(json&)>& edit, std::initializer_list<std::string> needles) {
  expect_refused("r1_distill_llama_8b.json", edit, needles);
}

}  // namespace

TEST(ConfigValidate, SizesArePositiveAndCapped) {
  v3([](json& j) { j["max_position_embeddings"] = 0; },
     {"'max_position_embeddings' = 0", "must be positive"});
  v3([](json& j) { j.erase("max_position_embeddings"); }, {"max_position_embeddings", "missing"});
  v3([](json& j) { j["vocab_size"] = 1e19; }, {"'vocab_size'", "1e+19", "out of range"});
  v3([](json& j) { j["vocab_size"] = 18446744073709551615ull; },
     {"'vocab_size'", "18446744073709551615", "out of range"});
  v3([](json& j) { j["hidden_size"] = 1e10; },
     {"'hidden_size' = 10000000000", "must be at most 131072"});
  v3([](json& j) { j["intermediate_size"] = 10000000000; },
     {"'intermediate_size' = 10000000000", "at most"});
  v3([](json& j) { j["num_hidden_layers"] = 100000; }, {"'num_hidden_layers' = 100000", "at most"});
  v3([](json& j) { j["kv_lora_rank"] = 0; }, {"'kv_lora_rank' = 0", "must be positive"});
  v3([](json& j) { j["q_lora_rank"] = -3; }, {"'q_lora_rank' = -3", "must be >= 0"});
  v3([](json& j) { j["v_head_dim"] = 4096; }, {"'v_head_dim' = 4096", "at most 1024"});
  v3([](json& j) { j["qk_rope_head_dim"] = 1024; }, {"'qk_rope_head_dim' = 1024", "at most 512"});
  v3([](json& j) { j["num_nextn_predict_layers"] = 17; }, {"'num_nextn_predict_layers' = 17"});
  v3([](json& j) { j["vocab_size"] = 2.5; }, {"'vocab_size'", "must be an integer"});
}

TEST(ConfigValidate, ProductsAreOverflowChecked) {
  v3(
      [](json& j) {
        j["num_attention_heads"] = 1024;
        j["qk_nope_head_dim"] = 1024;
      },
      {"'num_attention_heads' = 1024", "heads x qk head dim", "at most 1048576"});
  v3(
      [](json& j) {
        j["n_shared_experts"] = 256;
        j["moe_intermediate_size"] = 1 << 20;
      },
      {"'n_shared_experts' = 256", "shared expert width"});
  // Every field within its own cap, but the whole model far beyond any machine: refused
  // before count_parameters() could overflow int64.
  v3(
      [](json& j) {
        j["n_routed_experts"] = 16384;
        j["n_group"] = 1;
        j["topk_group"] = 1;
        j["moe_intermediate_size"] = 1 << 20;
        j["hidden_size"] = 131072;
        j["num_hidden_layers"] = 1024;
      },
      {"'num_hidden_layers' = 1024", "parameters"});
}

TEST(ConfigValidate, RoutingMustBeSatisfiable) {
  v3([](json& j) { j["num_experts_per_tok"] = 300; },
     {"'num_experts_per_tok' = 300", "at most 256"});
  v3([](json& j) { j["topk_group"] = 9; }, {"'topk_group' = 9", "at most 8"});
  v3([](json& j) { j["n_group"] = 7; }, {"'n_group' = 7", "must divide n_routed_experts (256)"});
  v3(
      [](json& j) {
        j["topk_group"] = 1;
        j["num_experts_per_tok"] = 40;
      },
      {"'topk_group' = 1", "32 experts, fewer than num_experts_per_tok (40)"});
  v3(
      [](json& j) {
        j["n_group"] = 256;
        j["topk_group"] = 8;
      },
      {"'n_group' = 256", "top-2"});
  v3([](json& j) { j["first_k_dense_replace"] = 62; },
     {"'first_k_dense_replace' = 62", "at most 61"});
  v3([](json& j) { j["moe_layer_freq"] = 0; }, {"'moe_layer_freq' = 0", "must be positive"});
  v3([](json& j) { j["routed_scaling_factor"] = 0; }, {"'routed_scaling_factor' = 0"});
  v3([](json& j) { j["scoring_func"] = "softmax"; }, {"'scoring_func'", "sigmoid"});
  v3([](json& j) { j["n_shared_experts"] = -1; }, {"'n_shared_experts' = -1", ">= 0"});
}

TEST(ConfigValidate, Fp8BlocksArePositive) {
  v3(
      [](json& j) {
        j["quantization_config"]["weight_block_size"] = {0, 0};
      },
      {"weight_block_size[0]' = 0", "must be positive"});
  v3(
      [](json& j) {
        j["quantization_config"]["weight_block_size"] = {128, -1};
      },
      {"weight_block_size[1]' = -1"});
}

TEST(ConfigValidate, RopeParametersInTheirDomain) {
  v3([](json& j) { j["rope_scaling"]["original_max_position_embeddings"] = 0; },
     {"'rope_scaling.original_max_position_embeddings' = 0", "must be positive"});
  v3([](json& j) { j["rope_scaling"]["factor"] = 0; }, {"'rope_scaling.factor' = 0", "(0, "});
  v3([](json& j) { j["rope_scaling"]["factor"] = -4; }, {"'rope_scaling.factor' = -4"});
  v3([](json& j) { j["rope_scaling"]["beta_fast"] = 0.5; },
     {"'rope_scaling.beta_fast' = 0.5", "must exceed beta_slow (1)"});
  v3([](json& j) { j["rope_scaling"]["mscale"] = -1; }, {"'rope_scaling.mscale' = -1"});
  v3([](json& j) { j["rope_scaling"]["type"] = "ntk"; }, {"rope_scaling.type", "ntk"});
  v3([](json& j) { j["rope_theta"] = 0; }, {"'rope_theta' = 0"});
  v3(
      [](json& j) {
        j["rope_scaling"] = {{"rope_type", "llama3"},
                             {"factor", 8},
                             {"original_max_position_embeddings", 8192},
                             {"low_freq_factor", 1},
                             {"high_freq_factor", 4}};
      },
      {"rope_scaling.type", "not valid for MLA"});
  llama([](json& j) { j["rope_scaling"]["high_freq_factor"] = 0.5; },
        {"'rope_scaling.high_freq_factor' = 0.5", "must exceed low_freq_factor"});
  llama([](json& j) { j["rope_scaling"]["original_max_position_embeddings"] = -8; },
        {"'rope_scaling.original_max_position_embeddings' = -8"});
  v3([](json& j) { j["qk_rope_head_dim"] = 63; }, {"'qk_rope_head_dim' = 63", "must be even"});
}

TEST(ConfigValidate, NormsAndTokenIds) {
  v3([](json& j) { j["rms_norm_eps"] = 0; }, {"'rms_norm_eps' = 0", "(0, 1]"});
  v3([](json& j) { j["rms_norm_eps"] = -1e-6; }, {"'rms_norm_eps' = -9.9999999999999995e-07"});
  v3([](json& j) { j["bos_token_id"] = 129280; },
     {"'bos_token_id' = 129280", "below vocab_size (129280)"});
  v3([](json& j) { j["eos_token_id"] = -7; }, {"'eos_token_id' = -7"});
}

TEST(ConfigValidate, GqaHeadsDivide) {
  qwen([](json& j) { j["num_key_value_heads"] = 5; },
       {"'num_key_value_heads' = 5", "must divide num_attention_heads (12)"});
  qwen([](json& j) { j["num_key_value_heads"] = 24; },
       {"'num_key_value_heads' = 24", "at most 12"});
  qwen([](json& j) { j["head_dim"] = 127; }, {"'head_dim' = 127", "must be even"});
  qwen([](json& j) { j["num_attention_heads"] = 0; }, {"'num_attention_heads' = 0"});
  qwen([](json& j) { j["intermediate_size"] = 0; }, {"'intermediate_size' = 0"});
}

TEST(ConfigValidate, ValidatedConfigsCountWithoutOverflow) {
  // The largest config every cap allows still counts in int64 without wrapping.
  json j = read_json("deepseek_v3.json");
  j["hidden_size"] = 16384;
  j["num_hidden_layers"] = 128;
  const ModelConfig c = ModelConfig::from_json(j, "big.json");
  const ParamCounts p = count_parameters(c);
  EXPECT_GT(p.total, 0);
  EXPECT_GT(p.mtp_total, 0);
  EXPECT_GT(p.mtp_activated, 0);
}

// GGUF metadata passes the same rules, with the GGUF key in the message, and is validated
// before anything divides by it (a head_count of 0 used to raise SIGFPE).
namespace {

std::string patch_u32(const std::string& file, const std::string& key, uint32_t value) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  std::string needle(8, '\0');
  const uint64_t n = key.size();
  std::memcpy(needle.data(), &n, 8);
  needle += key;
  const size_t at = bytes.find(needle);
  EXPECT_NE(at, std::string::npos) << key;
  uint32_t type;
  std::memcpy(&type, bytes.data() + at + needle.size(), 4);
  EXPECT_TRUE(type == 4 || type == 5) << key << " is not a u32/i32";
  std::memcpy(bytes.data() + at + needle.size() + 4, &value, 4);
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("tern_cfg_" + std::to_string(::getpid()) + "_" + key + ".gguf"))
                              .string();
  std::ofstream(out, std::ios::binary) << bytes;
  return out;
}

void expect_gguf_refused(const char* fixture, const std::string& key, uint32_t value,
                         std::initializer_list<std::string> needles) {
  const std::string path =
      patch_u32(std::string(TERN_TEST_DATA) + "/golden/" + fixture + "/model.gguf", key, value);
  try {
    config_from_gguf(formats::GgufFile::open(path));
    ADD_FAILURE() << key << " = " << value << " accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::config) << msg;
    EXPECT_NE(msg.find("metadata key '" + key + "'"), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << n << " in " << msg;
  }
  std::filesystem::remove(path);
}

}  // namespace

TEST(ConfigValidate, GgufRopeFreqsMustBeFloat) {
  // rope_freqs.weight re-typed as i32 (same byte size, so the file stays well-formed): refused
  // by name instead of being read as divisors.
  std::ifstream in(std::string(TERN_TEST_DATA) + "/golden/llama3_gguf/model.gguf",
                   std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  const std::string name = "rope_freqs.weight";
  std::string needle(8, '\0');
  const uint64_t n = name.size();
  std::memcpy(needle.data(), &n, 8);
  needle += name;
  const size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  uint32_t n_dims;
  std::memcpy(&n_dims, bytes.data() + at + needle.size(), 4);
  ASSERT_EQ(n_dims, 1u);
  const size_t type_at = at + needle.size() + 4 + 8 * n_dims;
  uint32_t type;
  std::memcpy(&type, bytes.data() + type_at, 4);
  ASSERT_EQ(type, 0u) << "fixture stores rope_freqs as f32";
  const uint32_t ggml_i32 = 26;
  std::memcpy(bytes.data() + type_at, &ggml_i32, 4);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("tern_ropefreqs_" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    config_from_gguf(formats::GgufFile::open(path));
    ADD_FAILURE() << "an i32 rope_freqs was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'rope_freqs.weight' has type i32"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove(path);
}

TEST(ConfigValidate, GgufMetadataBeforeArithmetic) {
  expect_gguf_refused("qwen2_gguf", "qwen2.attention.head_count", 0,
                      {"(num_attention_heads) = 0", "must be positive"});
  expect_gguf_refused("qwen2_gguf", "qwen2.context_length", 0, {"(max_position_embeddings) = 0"});
  expect_gguf_refused("qwen2_gguf", "qwen2.attention.head_count_kv", 3,
                      {"(num_key_value_heads) = 3", "must divide"});
  expect_gguf_refused("deepseek2_gguf", "deepseek2.attention.head_count", 0,
                      {"(num_attention_heads) = 0"});
  expect_gguf_refused("deepseek2_gguf", "deepseek2.rope.dimension_count", 7,
                      {"(qk_rope_head_dim) = 7", "must be even"});
  expect_gguf_refused("qwen2_gguf", "qwen2.block_count", 0xFFFFFFFFu,
                      {"(num_hidden_layers) = 4294967295", "at most 1024"});
}
