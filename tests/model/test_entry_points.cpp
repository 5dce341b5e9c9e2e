// The model's entry points refuse what would write out of bounds or compute a silent wrong
// answer (a cache of another model, short output buffers, unsupported dtypes), and MLA keeps
// W_UKᵀ in the checkpoint's own dtype so resident memory stays close to the file's bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "kernels/matmul.h"
#include "kernels/ref/ref_ops.h"
#include "model/init_weights.h"
#include "model/load_weights.h"
#include "model/model.h"
#include "model/tensor_source.h"

using namespace tern;
using namespace tern::model;

namespace {

std::string golden(const char* name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}

void expect_request_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected a request error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(EntryPoints, CacheOfAnotherModelIsRefused) {
  Model v3 = Model::load(golden("v3_tiny"));
  Model qwen = Model::load(golden("qwen2_tiny"));
  KvCache qwen_cache = qwen.make_cache(4);
  std::vector<float> logits(size_t(4 * v3.config().vocab_size));
  const std::vector<int32_t> ids = {1, 2};
  expect_request_error([&] { v3.forward(ids, qwen_cache, logits); }, "another model");
  KvCache short_cache(v3.config(), v3.config().num_hidden_layers - 1, 4);
  expect_request_error([&] { v3.forward(ids, short_cache, logits); }, "another model");
}

TEST(EntryPoints, OutputsSmallerThanTokensTimesVocabAreRefused) {
  Model m = Model::load(golden("v3_tiny"), LoadOptions{/*include_mtp=*/true});
  const ModelConfig& c = m.config();
  const std::vector<int32_t> ids = {1, 2, 3};
  std::vector<float> logits(size_t(3 * c.vocab_size - 1));
  KvCache cache = m.make_cache(8);
  expect_request_error([&] { m.forward(ids, cache, logits); }, "logits holds");
  EXPECT_EQ(cache.length(), 0) << "a refused call leaves the cache untouched";
  logits.resize(size_t(3 * c.vocab_size));
  std::vector<float> hidden(size_t(2 * c.hidden_size));
  ForwardOptions opts;
  opts.hidden_out = hidden;
  expect_request_error([&] { m.forward(ids, cache, logits, opts); }, "hidden_out");
  std::vector<int32_t> routed(2);
  ForwardOptions ropts;
  ropts.routed_out = routed;
  expect_request_error([&] { m.forward(ids, cache, logits, ropts); }, "routed_out");
  std::vector<int64_t> counts(1);
  ForwardOptions copts;
  copts.expert_counts = counts;
  expect_request_error([&] { m.forward(ids, cache, logits, copts); }, "expert_counts");
  std::vector<float> mtp(size_t(2 * c.vocab_size));
  expect_request_error([&] { m.forward_mtp(ids, hidden, mtp); }, "hidden holds");
  hidden.resize(size_t(3 * c.hidden_size));
  mtp.resize(size_t(c.vocab_size));
  expect_request_error([&] { m.forward_mtp(ids, hidden, mtp); }, "logits holds");
  expect_request_error([&] { m.make_cache(c.max_position_embeddings + 1); },
                       "max_position_embeddings");
}

TEST(EntryPoints, UnsupportedWeightDtypeIsAnErrorNotZero) {
  const std::vector<uint8_t> w(64, 1);
  std::vector<float> x(8, 1.0f), y(8, 7.0f);
  const kernels::WeightView bad{DType::i16, 8, 8, w.data()};
  EXPECT_THROW(kernels::matmul(x.data(), bad, y.data(), 1), Error);
  EXPECT_THROW(kernels::ref::dequant_row(bad, 0, 0, 8, y.data()), Error);
  EXPECT_THROW(kernels::ref::matmul(x.data(), 8, bad, y.data(), 8, 1), Error);
}

TEST(EntryPoints, MlaHeadsKeepTheCheckpointDtype) {
  Model fp8 = Model::load(golden("v3_fp8"));
  const MlaWeights& a = fp8.weights().layers[0].mla;
  ASSERT_EQ(a.kv_b_proj.view.dtype, DType::f8_e4m3);
  ASSERT_EQ(a.uk_t.size(), size_t(fp8.config().num_attention_heads));
  EXPECT_EQ(a.uk_t[0].dtype, DType::f8_e4m3);
  EXPECT_EQ(a.uk_t_data.dtype(), DType::f8_e4m3);
  EXPECT_NE(a.uk_t[0].scales, nullptr);
  // The fp8 transpose is exact: every element equals the kv_b_proj element it came from.
  const ModelConfig& c = fp8.config();
  const int64_t dn = c.qk_nope_head_dim, dv = c.v_head_dim, rkv = c.kv_lora_rank;
  for (int64_t h = 0; h < c.num_attention_heads; ++h) {
    std::vector<float> src(static_cast<size_t>(rkv)), dst(static_cast<size_t>(dn));
    for (int64_t r = 0; r < rkv; ++r) {
      kernels::ref::dequant_row(a.uk_t[size_t(h)], r, 0, dn, dst.data());
      for (int64_t j = 0; j < dn; ++j) {
        kernels::ref::dequant_row(a.kv_b_proj.view, h * (dn + dv) + j, r, 1, src.data());
        ASSERT_EQ(dst[size_t(j)], src[0]) << "head " << h << " r " << r << " j " << j;
      }
    }
  }
  Model bf16 = Model::load(golden("v3_tiny"));
  EXPECT_EQ(bf16.weights().layers[0].mla.uk_t[0].dtype,
            bf16.weights().layers[0].mla.kv_b_proj.view.dtype);
}

TEST(EntryPoints, SplitGgufUsesAttnKbInPlace) {
  Model m = Model::load(golden("deepseek2_gguf") + "/model.gguf");
  const MlaWeights& a = m.weights().layers[0].mla;
  EXPECT_FALSE(a.kv_b_proj.present()) << "kv_b_proj must not be rebuilt from attn_k_b/attn_v_b";
  ASSERT_FALSE(a.k_b.empty());
  EXPECT_EQ(a.uk_t[0].data, a.k_b.data()) << "W_UKᵀ is attn_k_b itself, not a copy";
  EXPECT_EQ(a.uv[0].data, a.v_b.data());
  EXPECT_TRUE(a.uk_t_data.empty());
  EXPECT_TRUE(a.uk.empty()) << "the naive form's W_UK is built only on request";
  std::vector<float> logits(size_t(m.config().vocab_size));
  KvCache cache = m.make_cache(1);
  ForwardOptions naive;
  naive.mla_mode = MlaMode::naive;
  expect_request_error([&] { m.forward(std::vector<int32_t>{1}, cache, logits, naive); },
                       "mla_naive");
}

TEST(EntryPoints, Fp8ResidentBytesWithinThreePercentOfFile) {
  // A V3-shaped FP8 checkpoint with 128-aligned dims, as the released one: loading keeps every
  // weight in fp8 (W_UKᵀ included), so resident memory is the file's tensor bytes plus f32 norms
  // and the transposed W_UKᵀ copy.
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("tern_resident_" + std::to_string(::getpid())))
          .string();
  nlohmann::json cfg = {{"model_type", "deepseek_v3"},
                        {"vocab_size", 2048},
                        {"hidden_size", 512},
                        {"intermediate_size", 1536},
                        {"moe_intermediate_size", 512},
                        {"num_hidden_layers", 3},
                        {"num_attention_heads", 4},
                        {"num_key_value_heads", 4},
                        {"q_lora_rank", 256},
                        {"kv_lora_rank", 256},
                        {"qk_nope_head_dim", 128},
                        {"qk_rope_head_dim", 64},
                        {"v_head_dim", 128},
                        {"n_routed_experts", 8},
                        {"n_shared_experts", 1},
                        {"num_experts_per_tok", 2},
                        {"first_k_dense_replace", 1},
                        {"n_group", 2},
                        {"topk_group", 1},
                        {"topk_method", "noaux_tc"},
                        {"scoring_func", "sigmoid"},
                        {"norm_topk_prob", true},
                        {"routed_scaling_factor", 2.5},
                        {"max_position_embeddings", 4096},
                        {"rms_norm_eps", 1e-6},
                        {"rope_theta", 10000},
                        {"num_nextn_predict_layers", 0},
                        {"tie_word_embeddings", false}};
  const ModelConfig c = ModelConfig::from_json(cfg, "resident.json");
  InitOptions o;
  o.dtype = InitDType::fp8;
  write_random_checkpoint(c, cfg.dump(), dir, o);
  Model m = Model::load(dir);
  const auto src = open_safetensors_source(dir);
  int64_t file_bytes = 0;
  for (const auto& n : src->names()) file_bytes += src->get(n).nbytes();
  const int64_t resident = resident_weight_bytes(m.weights());
  std::printf("fp8 file tensor bytes %lld, resident %lld (%.2f%%)\n", (long long)file_bytes,
              (long long)resident, 100.0 * double(resident - file_bytes) / double(file_bytes));
  EXPECT_GE(resident, file_bytes * 99 / 100);
  EXPECT_LE(resident, file_bytes * 103 / 100);
  EXPECT_EQ(m.weights().layers[1].mla.uk_t[0].dtype, DType::f8_e4m3);
  std::filesystem::remove_all(dir);
}

TEST(EntryPoints, ExpertCountsAddEveryMoeLayersChoices) {
  const Model m = Model::load(golden("v3_tiny"));
  const ModelConfig& c = m.config();
  int64_t moe_layers = 0;
  for (const auto& L : m.weights().layers) moe_layers += L.is_moe ? 1 : 0;
  ASSERT_GT(moe_layers, 0);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9};
  const int64_t T = int64_t(ids.size()), K = c.num_experts_per_tok, E = c.n_routed_experts;
  std::vector<float> logits(size_t(T * c.vocab_size));
  std::vector<int32_t> routed(size_t(T * K));
  std::vector<int64_t> counts(size_t(moe_layers * E), 0);
  ForwardOptions o;
  o.routed_out = routed;
  o.expert_counts = counts;
  KvCache cache = m.make_cache(16);
  m.forward(ids, cache, logits, o);
  std::vector<int64_t> first(size_t(E), 0);
  for (int32_t x : routed) first[size_t(x)] += 1;
  for (int64_t x = 0; x < E; ++x) EXPECT_EQ(counts[size_t(x)], first[size_t(x)]) << x;
  for (int64_t l = 0; l < moe_layers; ++l) {
    int64_t total = 0;
    for (int64_t x = 0; x < E; ++x) total += counts[size_t(l * E + x)];
    EXPECT_EQ(total, T * K) << "MoE layer " << l << ": every token chooses K experts";
  }
}
