// LoRA (model/lora*.h, the adapter path of model/grad/linear_grad.cpp): the tiny DeepSeek-V3
// model's loss and the gradient of every adapter's A and B against the independent PyTorch
// reference (tests/reference/make_lora_golden.py → tests/golden/lora_tiny_v3, float64) over an
// f32 base and a bf16 base; a q8_0 base (QLoRA) against the same computation on its dequantised
// values; PEFT files round-tripped and malformed ones refused; merging; target selection.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors_writer.h"
#include "formats/text_file.h"
#include "kernels/quantize.h"
#include "model/grad/f32_weights.h"
#include "model/grad/model_grad.h"
#include "model/load_weights.h"
#include "model/lora.h"
#include "model/lora_merge.h"
#include "model/lora_peft.h"
#include "tests/train/golden_params.h"

using namespace tern;
using namespace tern::model;

namespace {

const std::string kSrc = std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3";
const std::string kDir = std::string(TERN_TEST_DATA) + "/golden/lora_tiny_v3";

nlohmann::json read_case() {
  std::ifstream in(kDir + "/case.json");
  return nlohmann::json::parse(in);
}

// Every matrix of w re-stored as `t` (bf16 or a ggml block type); vectors stay f32.
void restore_matrices(const ModelConfig& c, ModelWeights& w, DType t) {
  visit_weights(c, w, !w.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind != SlotKind::linear) return;
    Linear& l = *s.linear;
    const int64_t rows = l.view.rows, cols = l.view.cols;
    const float* src = l.data.data_as<const float>();
    Tensor out = Tensor::zeros(t, {rows, cols});
    if (t == DType::bf16) {
      uint16_t* dst = out.data_as<uint16_t>();
      for (int64_t i = 0; i < rows * cols; ++i) dst[i] = f32_to_bf16(src[i]);
    } else {
      for (int64_t r = 0; r < rows; ++r)
        kernels::quantize_row(t, src + r * cols, cols,
                              static_cast<uint8_t*>(out.data()) + r * dtype_bytes_for(t, cols));
    }
    l.data = out;
    l.view.dtype = t;
    l.view.data = out.data();
  });
}

// Every matrix of w replaced by its dequantised f32 values.
void dequantize_matrices(const ModelConfig& c, ModelWeights& w) {
  visit_weights(c, w, !w.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind != SlotKind::linear) return;
    Linear& l = *s.linear;
    Tensor f = dequantize(l.view);
    l.data = f;
    l.view.dtype = DType::f32;
    l.view.data = f.data();
  });
}

struct StepOutcome {
  grad::StepResult r;
  std::vector<grad::ParamSlot> grads;
};

// One training step of the golden batch with the golden adapters on base w.
StepOutcome step_with_adapters(const ModelConfig& c, ModelWeights& w, LoraAdapters& a, ThreadPool& pool) {
  ModelWeights g = make_frozen_grads(c);
  a.allocate_training();
  a.attach(c, w, &g);
  const nlohmann::json cs = read_case();
  const auto batch = formats::Checkpoint::open(kSrc + "/batch.safetensors");
  const model::grad::TrainBatch tb{2, 16, batch.get("tokens").data_as<const int32_t>(),
                                   batch.get("docs").data_as<const int32_t>()};
  grad::ModelGrad net(c, 2, 16);
  StepOutcome run;
  run.r = net.step(w, g, tb,
                   {cs["mtp_lambda"].get<float>(), cs["balance_alpha"].get<float>(), 1.0f}, pool);
  run.grads = a.slots(LoraAdapters::Part::grad);
  return run;
}

// Each adapter gradient within 1e-5 of its tensor's largest reference entry (the f32 engine's
// spread on this model, as for the other training goldens).
void expect_adapter_grads(const std::vector<grad::ParamSlot>& got, const std::string& path) {
  const auto ref = formats::Checkpoint::open(path);
  int nonzero = 0;
  for (const auto& s : got) {
    const Tensor& t = ref.get("base_model.model." + s.name);
    ASSERT_EQ(t.numel(), s.size) << s.name;
    const float* r = t.data_as<const float>();
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < s.size; ++i) scale = std::max(scale, double(std::fabs(r[i])));
    for (int64_t i = 0; i < s.size; ++i)
      worst = std::max(worst, double(std::fabs(s.data[i] - r[i])));
    EXPECT_LE(worst, 1e-5 * scale + 1e-9) << s.name << " (largest entry " << scale << ")";
    nonzero += scale > 0;
  }
  EXPECT_GT(nonzero, 20);
}

ModelWeights golden_base(const ModelConfig& c) {
  ModelWeights w = grad::make_f32_weights(c);
  test::load_golden_params(c, w, kSrc + "/init.safetensors");
  return w;
}

}  // namespace

TEST(LoraGolden, F32BaseLossAndAdapterGradientsMatchPyTorch) {
  const ModelConfig c = ModelConfig::from_file(kSrc + "/config.json");
  ModelWeights w = golden_base(c);
  LoraAdapters a = load_peft_adapter(kDir, c, w);
  EXPECT_EQ(a.rank(), 4);
  EXPECT_FLOAT_EQ(a.modules().front()->pair.scale, 2.0f);
  ThreadPool pool(2);
  const StepOutcome run = step_with_adapters(c, w, a, pool);
  EXPECT_NEAR(run.r.loss, read_case()["loss_f32"].get<double>(), 1e-5);
  expect_adapter_grads(run.grads, kDir + "/grads_f32.safetensors");
}

TEST(LoraGolden, Bf16BaseStaysBf16AndMatchesPyTorch) {
  const ModelConfig c = ModelConfig::from_file(kSrc + "/config.json");
  ModelWeights w = golden_base(c);
  restore_matrices(c, w, DType::bf16);
  EXPECT_EQ(w.layers[0].mla.kv_b_proj.view.dtype, DType::bf16);
  LoraAdapters a = load_peft_adapter(kDir, c, w);
  ThreadPool pool(2);
  const StepOutcome run = step_with_adapters(c, w, a, pool);
  EXPECT_NEAR(run.r.loss, read_case()["loss_bf16"].get<double>(), 1e-5);
  expect_adapter_grads(run.grads, kDir + "/grads_bf16.safetensors");
}

TEST(LoraGolden, QuantisedBaseTrainsLikeItsDequantisedValues) {
  const ModelConfig c = ModelConfig::from_file(kSrc + "/config.json");
  ThreadPool pool(2);
  ModelWeights q = golden_base(c);
  restore_matrices(c, q, DType::q8_0);
  ModelWeights f = q;
  dequantize_matrices(c, f);
  LoraAdapters aq = load_peft_adapter(kDir, c, q), af = load_peft_adapter(kDir, c, f);
  const StepOutcome rq = step_with_adapters(c, q, aq, pool), rf = step_with_adapters(c, f, af, pool);
  EXPECT_NEAR(rq.r.loss, rf.r.loss, 1e-5);
  EXPECT_GT(std::fabs(rq.r.loss - read_case()["loss_f32"].get<double>()), 1e-6)
      << "q8_0 rounding must show in the loss, or the test would not see the quantised path";
  ASSERT_EQ(rq.grads.size(), rf.grads.size());
  for (size_t i = 0; i < rq.grads.size(); ++i) {
    double scale = 0, worst = 0;
    for (int64_t k = 0; k < rf.grads[i].size; ++k) {
      scale = std::max(scale, double(std::fabs(rf.grads[i].data[k])));
      worst = std::max(worst, double(std::fabs(rq.grads[i].data[k] - rf.grads[i].data[k])));
    }
    EXPECT_LE(worst, 1e-5 * scale + 1e-9) << rq.grads[i].name;
  }
}

TEST(Lora, FreshAdaptersStartAtTheBaseModel) {
  const ModelConfig c = ModelConfig::from_file(kSrc + "/config.json");
  ThreadPool pool(2);
  ModelWeights w = golden_base(c);
  const auto batch = formats::Checkpoint::open(kSrc + "/batch.safetensors");
  const grad::TrainBatch tb{2, 16, batch.get("tokens").data_as<const int32_t>(),
                            batch.get("docs").data_as<const int32_t>()};
  grad::ModelGrad net(c, 2, 16);
  const double base = net.evaluate(w, tb, {0.3f, 0.01f, 1.0f}, pool).loss;
  LoraAdapters a = LoraAdapters::create(c, w, {8, 0, {"all"}}, 7);
  EXPECT_FLOAT_EQ(a.modules().front()->pair.scale, 2.0f) << "alpha defaults to 2 x rank";
  a.attach(c, w, nullptr);
  EXPECT_DOUBLE_EQ(net.evaluate(w, tb, {0.3f, 0.01f, 1.0f}, pool).loss, base) << "B starts at 0";
  // A is uniform within ±1/sqrt(in_features), not all zero.
  const auto& m = *a.modules().front();
  const double bound = 1.0 / std::sqrt(double(m.pair.a.shape()[1]));
  double largest = 0;
  for (float v : m.pair.a.span_as<const float>()) largest = std::max(largest, double(std::fabs(v)));
  EXPECT_LE(largest, bound);
  EXPECT_GT(largest, 0.5 * bound);
}

TEST(Lora, TargetsSelectTheProjectionsAsked) {
  const std::vector<std::string> attn = parse_lora_targets("q,kv,o");
  EXPECT_TRUE(lora_targets_module(attn, "model.layers.0.self_attn.q_b_proj", 2));
  EXPECT_TRUE(lora_targets_module(attn, "model.layers.1.self_attn.kv_a_proj_with_mqa", 2));
  EXPECT_FALSE(lora_targets_module(attn, "model.layers.0.mlp.gate_proj", 2));
  EXPECT_FALSE(lora_targets_module(attn, "model.layers.2.self_attn.q_b_proj", 2)) << "MTP layer";
  const std::vector<std::string> experts = parse_lora_targets("experts");
  EXPECT_TRUE(lora_targets_module(experts, "model.layers.1.mlp.experts.3.down_proj", 2));
  EXPECT_FALSE(lora_targets_module(experts, "model.layers.1.mlp.shared_experts.down_proj", 2));
  EXPECT_FALSE(lora_targets_module(experts, "model.layers.1.mlp.gate", 2)) << "the router";
  const std::vector<std::string> mlp = parse_lora_targets("mlp,down_proj");
  EXPECT_TRUE(lora_targets_module(mlp, "model.layers.0.mlp.up_proj", 2));
  EXPECT_TRUE(lora_targets_module(mlp, "model.layers.1.mlp.shared_experts.down_proj", 2));
  EXPECT_FALSE(lora_targets_module(mlp, "model.embed_tokens", 2));
  EXPECT_FALSE(lora_targets_module(parse_lora_targets("all"), "lm_head", 2));
  EXPECT_THROW(parse_lora_targets("q,attention"), Error);
  EXPECT_THROW(parse_lora_targets(""), Error);
}

TEST(Lora, PeftFilesRoundTripAndBadOnesAreRefused) {
  const ModelConfig c = ModelConfig::from_file(kSrc + "/config.json");
  ModelWeights w = golden_base(c);
  const LoraAdapters a = load_peft_adapter(kDir, c, w);
  const std::string dir = testing::TempDir() + "/tern_lora_roundtrip";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  save_peft_adapter(dir, a, "base-model");
  const nlohmann::json cfg =
      nlohmann::json::parse(formats::read_text_file(dir + "/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  EXPECT_EQ(cfg["target_modules"].size(), a.modules().size());
  const LoraAdapters back = load_peft_adapter(dir, c, w);
  ASSERT_EQ(back.modules().size(), a.modules().size());
  for (size_t i = 0; i < a.modules().size(); ++i) {
    EXPECT_EQ(back.modules()[i]->name, a.modules()[i]->name);
    const auto x = a.modules()[i]->pair.b.span_as<const float>();
    const auto y = back.modules()[i]->pair.b.span_as<const float>();
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin()));
  }

  auto expect_refused = [&](const std::string& what, const std::string& needle) {
    try {
      load_peft_adapter(dir, c, w);
      ADD_FAILURE() << what << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << what << ": " << e.what();
    }
  };
  // Another base: an adapter for a wider model does not fit this one.
  const auto& m0 = *a.modules()[0];
  std::vector<formats::NamedTensor> wrong = {
      {"base_model.model." + m0.name + ".lora_A.weight",
       Tensor::zeros(DType::f32, {4, m0.pair.a.shape()[1] + 1})},
      {"base_model.model." + m0.name + ".lora_B.weight", m0.pair.b}};
  formats::write_safetensors(dir + "/adapter_model.safetensors", wrong);
  expect_refused("wrong shape", "different base model");
  formats::write_safetensors(dir + "/adapter_model.safetensors", {wrong[1]});
  expect_refused("B alone", "without its lora_A");
  formats::write_safetensors(
      dir + "/adapter_model.safetensors",
      {{"base_model.model.model.layers.0.self_attn.r_proj.lora_A.weight", m0.pair.a},
       {"base_model.model.model.layers.0.self_attn.r_proj.lora_B.weight", m0.pair.b}});
  expect_refused("unknown module", "not a Linear of the base");
  formats::write_text_file(dir + "/adapter_config.json", R"({"peft_type": "IA3", "r": 4})");
  expect_refused("IA3", "peft_type");
  formats::write_text_file(dir + "/adapter_config.json", R"({"peft_type": "LORA", "r": 4,)");
  expect_refused("truncated JSON", "adapter_config.json");
  std::filesystem::remove(dir + "/adapter_config.json");
  expect_refused("no config", "no adapter_config.json");
}

TEST(Lora, MergedMatricesAreBasePlusScaledProduct) {
  const ModelConfig c = ModelConfig::from_file(kSrc + "/config.json");
  ModelWeights w = golden_base(c);
  const LoraAdapters a = load_peft_adapter(kDir, c, w);
  const ModelWeights merged = merge_lora(c, w, a);
  const auto& p = a.modules()[0]->pair;  // the first adapted matrix of layer 0
  const Linear* before = nullptr;
  const Linear* after = nullptr;
  ModelWeights wc = w, mc = merged;
  visit_weights(c, wc, !wc.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind == SlotKind::linear && s.name == a.modules()[0]->name + ".weight") before = s.linear;
  });
  visit_weights(c, mc, !mc.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind == SlotKind::linear && s.name == a.modules()[0]->name + ".weight") after = s.linear;
  });
  ASSERT_TRUE(before && after);
  EXPECT_NE(before->data.data(), after->data.data()) << "the base is not written";
  const int64_t rows = before->view.rows, cols = before->view.cols, r = p.rank();
  const float* W = before->data.data_as<const float>();
  const float* M = after->data.data_as<const float>();
  const float* A = p.a.data_as<const float>();
  const float* B = p.b.data_as<const float>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double want = W[i * cols + j];
      for (int64_t k = 0; k < r; ++k) want += double(p.scale) * B[i * r + k] * A[k * cols + j];
      ASSERT_NEAR(M[i * cols + j], want, 1e-6) << i << "," << j;
    }
  EXPECT_EQ(merged_dtype(DType::f8_e4m3), DType::bf16);
  EXPECT_EQ(merged_dtype(DType::f32), DType::f32);
}
