// `tern quantize` (model/quantize_checkpoint.h) and importance matrices (model/imatrix.h): the
// written compressed-tensors and FP8 files decoded by a decoder written here from the formats'
// definitions (int32 words, LSB-first, values + 2^(bits-1); bf16 group scales; e4m3 with
// 128x128 f32 scale_inv) match what tern loads; every weight within half a step of the
// original; the quantised models' perplexity near the original's; importance-weighted rounding
// never worse than plain rounding on the weighted error; bad input refused with nothing written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/gguf_writer.h"
#include "formats/text_file.h"
#include "infer/perplexity.h"
#include "kernels/matmul.h"
#include "model/imatrix.h"
#include "model/llama_imatrix.h"
#include "model/load_weights.h"
#include "model/model.h"
#include "model/quantize_checkpoint.h"

using namespace tern;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(TERN_TEST_DATA) + "/golden/v3_tiny";

std::string fresh_dir(const std::string& name) {
  const std::string d = testing::TempDir() + "/tern_quantize_" + name;
  fs::remove_all(d);
  return d;
}

std::vector<int32_t> tokens(int64_t n, int64_t vocab) {
  std::mt19937 g(5);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = int32_t(g() % uint32_t(vocab));
  return ids;
}

// The matrix named `module` of a model, as f32.
std::vector<float> matrix(const model::Model& m, const std::string& module, int64_t* rows,
                          int64_t* cols) {
  model::ModelWeights w = m.weights();
  std::vector<float> out;
  model::visit_weights(m.config(), w, false, [&](model::WeightSlot& s) {
    if (s.kind != model::SlotKind::linear || s.name != module + ".weight") return;
    const Tensor t = model::dequantize(s.linear->view);
    *rows = s.linear->view.rows, *cols = s.linear->view.cols;
    out.assign(t.data_as<const float>(), t.data_as<const float>() + t.numel());
  });
  return out;
}

// compressed-tensors pack-quantized, decoded from its definition.
std::vector<float> decode_packed(const formats::Checkpoint& ck, const std::string& module, int bits,
                                 int64_t group) {
  const Tensor& words = ck.get(module + ".weight_packed");
  const Tensor& scales = ck.get(module + ".weight_scale");
  const Tensor& shape = ck.get(module + ".weight_shape");
  EXPECT_EQ(words.dtype(), DType::i32);
  EXPECT_EQ(scales.dtype(), DType::bf16);
  EXPECT_EQ(shape.dtype(), DType::i64);
  const int64_t rows = shape.data_as<const int64_t>()[0], cols = shape.data_as<const int64_t>()[1];
  const int64_t per = 32 / bits, n_words = words.shape()[1];
  EXPECT_EQ(n_words, (cols + per - 1) / per);
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t word = uint32_t(words.data_as<const int32_t>()[r * n_words + c / per]);
      const int64_t u = (word >> (bits * (c % per))) & ((1u << bits) - 1);
      const int64_t q = u - (int64_t(1) << (bits - 1));
      const float s = bf16_to_f32(scales.data_as<const uint16_t>()[r * (cols / group) + c / group]);
      w[size_t(r * cols + c)] = float(q) * s;
    }
  return w;
}

}  // namespace

// Squared error of one row's rounding, weighted by `imp` (null: 1), and whether every q is the
// nearest step of its group's scale (clamped to the range).
double row_error(const std::vector<float>& x, const std::vector<int8_t>& q,
                 const std::vector<float>& s, int bits, const float* imp, bool* nearest) {
  const int qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
  double e = 0;
  *nearest = true;
  for (size_t i = 0; i < x.size(); ++i) {
    const float sc = s[i / 32];
    const float want = std::clamp(std::nearbyint(x[i] / sc), float(qmin), float(qmax));
    *nearest = *nearest && float(q[i]) == want;
    e += (imp ? imp[i] : 1.0) * std::pow(double(x[i]) - double(q[i]) * sc, 2);
  }
  return e;
}

TEST(Quantize, IntRowRoundsToTheNearestStepOfTheBestBf16Scale) {
  std::mt19937 g(1);
  std::normal_distribution<float> n(0, 1);
  std::vector<float> x(64);
  for (auto& v : x) v = n(g);
  for (int bits : {4, 8}) {
    const int qmax = (1 << (bits - 1)) - 1;
    std::vector<int8_t> q(64);
    std::vector<float> s(2);
    model::quantize_int_row(x.data(), 64, bits, 32, nullptr, q.data(), s.data());
    // Plain rounding at bf16(amax / qmax), computed here.
    std::vector<int8_t> q_plain(64);
    std::vector<float> s_plain(2);
    for (int gi = 0; gi < 2; ++gi) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[size_t(gi * 32 + i)]));
      s_plain[size_t(gi)] = bf16_to_f32(f32_to_bf16(amax / float(qmax)));
      EXPECT_EQ(s[size_t(gi)], bf16_to_f32(f32_to_bf16(s[size_t(gi)]))) << "a bf16 number";
      for (int i = 0; i < 32; ++i)
        q_plain[size_t(gi * 32 + i)] =
            int8_t(std::nearbyint(x[size_t(gi * 32 + i)] / s_plain[size_t(gi)]));
    }
    bool nearest = false, plain_nearest = false;
    const double e = row_error(x, q, s, bits, nullptr, &nearest);
    const double e_plain = row_error(x, q_plain, s_plain, bits, nullptr, &plain_nearest);
    EXPECT_TRUE(nearest) << "q decodes to exactly what the file says";
    EXPECT_TRUE(plain_nearest);
    EXPECT_LE(e, e_plain) << bits;
    // 4-bit: the search finds a clearly better step on Gaussian data (the negative scale alone
    // gives the peak's side one more level).
    if (bits == 4) {
      EXPECT_LT(e, 0.9 * e_plain);
    }
  }
  // A group whose peak is positive can take a negative scale (the peak rounds to -8).
  {
    std::vector<float> y(32, 0.0f);
    for (int i = 0; i < 32; ++i) y[size_t(i)] = float(i % 9) - 4.0f;  // -4..4: 9 levels
    y[0] = 8.0f;
    std::vector<int8_t> q(32);
    std::vector<float> s(1);
    model::quantize_int_row(y.data(), 32, 4, 32, nullptr, q.data(), s.data());
    EXPECT_EQ(s[0], -1.0f) << "step 1 reproduces every value; the peak 8 is q = -8";
    EXPECT_EQ(q[0], -8);
  }
  // Importance: the weighted error never exceeds the unweighted choice's.
  std::vector<float> imp(64);
  for (auto& v : imp) v = std::fabs(n(g)) * 10;
  imp[3] = 1000;
  std::vector<int8_t> q0(64), q1(64);
  std::vector<float> s0(2), s1(2);
  model::quantize_int_row(x.data(), 64, 4, 32, nullptr, q0.data(), s0.data());
  model::quantize_int_row(x.data(), 64, 4, 32, imp.data(), q1.data(), s1.data());
  bool n0 = false, n1 = false;
  EXPECT_LE(row_error(x, q1, s1, 4, imp.data(), &n1), row_error(x, q0, s0, 4, imp.data(), &n0));
  EXPECT_TRUE(n1);
}

TEST(Quantize, IntModelsAreCompressedTensorsThatDecodeAsLoaded) {
  const model::Model orig = model::Model::load(kTiny);
  const std::vector<int32_t> ids = tokens(96, orig.config().vocab_size);
  const infer::PerplexityOptions po{32, 16, 64};
  for (int bits : {8, 4}) {
    const std::string out = fresh_dir("int" + std::to_string(bits));
    model::QuantizeOptions o;
    o.type = bits == 8 ? "int8" : "int4";
    o.group = 32;
    const model::QuantizeSummary s = model::write_quantized_model(kTiny, out, o);
    EXPECT_GT(s.quantized, 20);
    EXPECT_EQ(s.kept, 7) << "embed_tokens, lm_head, 3 routers, the MTP module's embedding and head";
    EXPECT_LT(s.bytes_out, s.bytes_in);
    const nlohmann::json cfg = nlohmann::json::parse(formats::read_text_file(out + "/config.json"));
    const nlohmann::json& q = cfg["quantization_config"];
    EXPECT_EQ(q["quant_method"], "compressed-tensors");
    EXPECT_EQ(q["format"], "pack-quantized");
    EXPECT_EQ(q["quantization_status"], "compressed");
    EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["num_bits"], bits);
    EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["group_size"], 32);
    const nlohmann::json ignore = q["ignore"];
    EXPECT_EQ(ignore.size(), 5u) << "the kept Linears but the embeddings";
    EXPECT_NE(std::find(ignore.begin(), ignore.end(), "lm_head"), ignore.end());
    EXPECT_NE(std::find(ignore.begin(), ignore.end(), "model.layers.1.mlp.gate"), ignore.end());

    const model::Model qm = model::Model::load(out);
    const auto ck = formats::Checkpoint::open(out);
    EXPECT_FALSE(ck.has("model.layers.0.self_attn.q_a_proj.weight"));
    EXPECT_EQ(ck.get("lm_head.weight").dtype(), DType::bf16);
    for (const std::string module :
         {"model.layers.0.self_attn.q_a_proj", "model.layers.1.mlp.experts.3.down_proj"}) {
      int64_t rows = 0, cols = 0;
      const std::vector<float> loaded = matrix(qm, module, &rows, &cols);
      const std::vector<float> decoded = decode_packed(ck, module, bits, 32);
      ASSERT_EQ(loaded.size(), decoded.size()) << module;
      for (size_t i = 0; i < loaded.size(); ++i) ASSERT_EQ(loaded[i], decoded[i]) << module << i;
      // Every weight within half a step of the original, but a peak the search chose to clip,
      // which is within two steps.
      const std::vector<float> want = matrix(orig, module, &rows, &cols);
      const Tensor& scales = ck.get(module + ".weight_scale");
      int64_t beyond_half = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const float step =
              std::fabs(bf16_to_f32(scales.data_as<const uint16_t>()[r * (cols / 32) + c / 32]));
          const float err = std::fabs(loaded[size_t(r * cols + c)] - want[size_t(r * cols + c)]);
          ASSERT_LE(err, 2.0f * step + 1e-7f) << module << " " << r << "," << c;
          beyond_half += err > 0.5f * step * 1.001f + 1e-7f;
        }
      EXPECT_LE(beyond_half, rows * cols / 32) << module << ": at most one clipped peak a group";
    }
    const infer::Comparison cmp = infer::compare_models(qm, orig, ids, po);
    const double delta = cmp.model.perplexity() / cmp.ref.perplexity() - 1;
    EXPECT_LT(std::fabs(delta), bits == 8 ? 0.01 : 0.1) << o.type;
    // A random tiny model's next-token distributions are nearly flat, so 4-bit rounding flips
    // many top-1 choices; trained models are the compression benchmark's business.
    EXPECT_GT(cmp.top1_agreement(), bits == 8 ? 0.9 : 0.3) << o.type;
  }
}

TEST(Quantize, KeptMatricesCanBeInt8InAConfigGroupOfTheirOwn) {
  const std::string out = fresh_dir("int4_head8");
  model::QuantizeOptions o;
  o.type = "int4";
  o.group = 32;
  o.keep_hi = {"router", "head:int8"};  // the embeddings in int4 too
  const model::QuantizeSummary s = model::write_quantized_model(kTiny, out, o);
  EXPECT_EQ(s.kept, 3) << "the routers";
  nlohmann::json cfg = nlohmann::json::parse(formats::read_text_file(out + "/config.json"));
  const nlohmann::json& groups = cfg["quantization_config"]["config_groups"];
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups["group_0"]["weights"]["num_bits"], 4);
  EXPECT_EQ(groups["group_0"]["targets"][0], "Linear");
  EXPECT_NE(std::find(groups["group_0"]["targets"].begin(), groups["group_0"]["targets"].end(),
                      "model.embed_tokens"),
            groups["group_0"]["targets"].end())
      << "the embedding is not a Linear, so it is named";
  EXPECT_EQ(groups["group_1"]["weights"]["num_bits"], 8);
  EXPECT_EQ(groups["group_1"]["targets"],
            nlohmann::json({"lm_head", "model.layers.3.shared_head.head"}));
  const nlohmann::json ignore = cfg["quantization_config"]["ignore"];
  EXPECT_EQ(ignore.size(), 3u);

  const auto ck = formats::Checkpoint::open(out);
  EXPECT_EQ(ck.get("lm_head.weight_packed").shape()[1], 64 / 4) << "int8: 4 per word";
  EXPECT_EQ(ck.get("model.embed_tokens.weight_packed").shape()[1], 64 / 8) << "int4: 8 per word";
  const model::Model qm = model::Model::load(out), orig = model::Model::load(kTiny);
  EXPECT_EQ(qm.weights().lm_head.view.dtype, DType::i8);
  EXPECT_EQ(qm.weights().layers[0].mla.q_a_proj.view.dtype, DType::i4);
  for (const auto& [module, bits] : std::vector<std::pair<std::string, int>>{
           {"lm_head", 8}, {"model.layers.0.self_attn.kv_a_proj_with_mqa", 4}}) {
    int64_t rows = 0, cols = 0;
    const std::vector<float> loaded = matrix(qm, module, &rows, &cols);
    EXPECT_EQ(loaded, decode_packed(ck, module, bits, 32)) << module;
  }
  const infer::Comparison cmp =
      infer::compare_models(qm, orig, tokens(96, orig.config().vocab_size), {32, 16, 64});
  EXPECT_LT(std::fabs(cmp.model.perplexity() / cmp.ref.perplexity() - 1), 0.1);

  // Other writers' configs: a "re:" target, and the precedence name > pattern > class.
  cfg["quantization_config"]["config_groups"]["group_1"]["targets"] = {"re:.*head$"};
  formats::write_text_file(out + "/config.json", cfg.dump());
  EXPECT_EQ(model::Model::load(out).weights().lm_head.view.dtype, DType::i8);
  const model::ModelConfig c = model::ModelConfig::from_file(out + "/config.json");
  EXPECT_EQ(c.int_scheme_for("lm_head")->bits, 8);
  EXPECT_EQ(c.int_scheme_for("model.layers.0.mlp.up_proj")->bits, 4);
  EXPECT_EQ(c.int_scheme_for("model.embed_tokens")->bits, 4);
  // A packed matrix no group targets, and a pattern that is not one: refused by name.
  cfg["quantization_config"]["config_groups"]["group_0"]["targets"] = {"model.embed_tokens"};
  formats::write_text_file(out + "/config.json", cfg.dump());
  try {
    model::Model::load(out);
    ADD_FAILURE() << "loaded a packed matrix without a scheme";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no config group"), std::string::npos) << e.what();
  }
  cfg["quantization_config"]["config_groups"]["group_1"]["targets"] = {"re:(lm_head"};
  formats::write_text_file(out + "/config.json", cfg.dump());
  EXPECT_THROW(model::ModelConfig::from_file(out + "/config.json"), Error);

  // Integer schemes mix with int4 / int8 only, not fp8; an unknown type after ':' is refused.
  const std::string bad = fresh_dir("bad_keep_type");
  o.type = "fp8";
  EXPECT_THROW(model::write_quantized_model(kTiny, bad, o), Error);
  o.type = "int4";
  o.keep_hi = {"head:int8-g48"};
  EXPECT_THROW(model::write_quantized_model(kTiny, bad, o), Error);
  o.keep_hi = {"head:fp4"};
  EXPECT_THROW(model::write_quantized_model(kTiny, bad, o), Error);
  EXPECT_FALSE(fs::exists(bad));
}

TEST(Quantize, EachChosenSchemeGetsItsOwnConfigGroup) {
  const std::string out = fresh_dir("int4_mixed");
  model::QuantizeOptions o;
  o.type = "int4";
  o.group = 32;
  o.keep_hi = {"router", "head:int8-g64", "experts:int4-g64", "attn:int8"};
  model::write_quantized_model(kTiny, out, o);
  const nlohmann::json cfg = nlohmann::json::parse(formats::read_text_file(out + "/config.json"));
  const nlohmann::json& groups = cfg["quantization_config"]["config_groups"];
  ASSERT_EQ(groups.size(), 4u) << groups.dump();
  std::map<std::pair<int, int>, nlohmann::json> by;
  for (const auto& [name, g] : groups.items())
    by[{g["weights"]["num_bits"].get<int>(), g["weights"]["group_size"].get<int>()}] = g["targets"];
  EXPECT_EQ(by.at({4, 32})[0], "Linear");
  EXPECT_EQ(by.at({8, 64}), nlohmann::json({"lm_head", "model.layers.3.shared_head.head"}));
  EXPECT_NE(std::find(by.at({4, 64}).begin(), by.at({4, 64}).end(),
                      "model.layers.1.mlp.experts.2.up_proj"),
            by.at({4, 64}).end());
  EXPECT_NE(
      std::find(by.at({8, 32}).begin(), by.at({8, 32}).end(), "model.layers.0.self_attn.q_a_proj"),
      by.at({8, 32}).end());
  const auto ck = formats::Checkpoint::open(out);
  const model::Model qm = model::Model::load(out);
  for (const auto& [module, bits, group] : std::vector<std::tuple<std::string, int, int>>{
           {"lm_head", 8, 64},
           {"model.layers.1.mlp.experts.2.up_proj", 4, 64},
           {"model.layers.0.self_attn.q_a_proj", 8, 32},
           {"model.layers.1.mlp.shared_experts.up_proj", 4, 32}}) {
    EXPECT_EQ(ck.get(module + ".weight_scale").shape()[1], 64 / group) << module;
    int64_t rows = 0, cols = 0;
    EXPECT_EQ(matrix(qm, module, &rows, &cols), decode_packed(ck, module, bits, group)) << module;
  }
}

TEST(Quantize, DenseQwen2ModelsQuantiseAndLoadToo) {
  const std::string src = std::string(TERN_TEST_DATA) + "/golden/qwen2_tiny";
  const std::string out = fresh_dir("qwen2_int8");
  model::QuantizeOptions o;
  o.type = "int8";
  o.group = 32;
  const model::QuantizeSummary s = model::write_quantized_model(src, out, o);
  EXPECT_GT(s.quantized, 5);
  const model::Model orig = model::Model::load(src), qm = model::Model::load(out);
  ASSERT_EQ(qm.config().int_schemes.size(), 1u);
  EXPECT_EQ(qm.config().int_schemes[0].bits, 8);
  const infer::Comparison cmp =
      infer::compare_models(qm, orig, tokens(64, orig.config().vocab_size), {32, 16, 64});
  EXPECT_LT(std::fabs(cmp.model.perplexity() / cmp.ref.perplexity() - 1), 0.01);
}

TEST(Quantize, Fp8ModelUsesDeepSeeksLayout) {
  const std::string out = fresh_dir("fp8");
  model::QuantizeOptions o;
  o.type = "fp8";
  o.keep_hi = {"embed", "head", "router", "attn"};
  const model::QuantizeSummary s = model::write_quantized_model(kTiny, out, o);
  EXPECT_GT(s.quantized, 10);
  const auto ck = formats::Checkpoint::open(out);
  EXPECT_EQ(ck.get("model.layers.1.mlp.experts.0.up_proj.weight").dtype(), DType::f8_e4m3);
  EXPECT_EQ(ck.get("model.layers.1.mlp.experts.0.up_proj.weight_scale_inv").dtype(), DType::f32);
  EXPECT_EQ(ck.get("model.layers.0.self_attn.q_a_proj.weight").dtype(), DType::bf16) << "attn kept";
  const nlohmann::json cfg = nlohmann::json::parse(formats::read_text_file(out + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "fp8");
  const nlohmann::json& kept = cfg["quantization_config"]["modules_to_not_convert"];
  EXPECT_NE(std::find(kept.begin(), kept.end(), "model.layers.0.self_attn.q_a_proj"), kept.end())
      << "modules kept in bf16 are declared, so other engines look for no scales on them";
  const model::Model qm = model::Model::load(out), orig = model::Model::load(kTiny);
  const std::vector<int32_t> ids = tokens(96, orig.config().vocab_size);
  const infer::Comparison cmp = infer::compare_models(qm, orig, ids, {32, 16, 64});
  EXPECT_LT(std::fabs(cmp.model.perplexity() / cmp.ref.perplexity() - 1), 0.02);
}

TEST(Quantize, ImatrixIsCollectedWrittenReadAndUsed) {
  const model::Model m = model::Model::load(kTiny);
  // The collector sees a matmul on a known weight: mean x² per column.
  {
    model::ImatrixCollector col(m);
    const model::ModelWeights& w = m.weights();
    const kernels::WeightView& v = w.layers[0].mla.q_a_proj.view;
    std::vector<float> x(size_t(2 * v.cols)), y(size_t(2 * v.rows));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) - 3.0f;
    kernels::matmul(x.data(), v, y.data(), 2);
    const model::Imatrix im = col.result();
    ASSERT_EQ(im.columns.size(), 1u);
    EXPECT_EQ(im.columns[0].first, "model.layers.0.self_attn.q_a_proj");
    for (int64_t c = 0; c < v.cols; ++c) {
      const double a = x[size_t(c)], b = x[size_t(v.cols + c)];
      EXPECT_FLOAT_EQ(im.columns[0].second[size_t(c)], float((a * a + b * b) / 2));
    }
  }
  model::Imatrix im;
  {
    model::ImatrixCollector col(m);
    const infer::PerplexityResult r =
        infer::perplexity(m, tokens(64, m.config().vocab_size), {32, 16, 64});
    col.add_tokens(r.windows * 32);
    im = col.result();
  }
  EXPECT_GT(im.columns.size(), 20u);
  EXPECT_EQ(im.tokens, 96);
  const std::string path = testing::TempDir() + "/tern_imatrix.safetensors";
  model::write_imatrix(path, im);
  const model::Imatrix back = model::read_imatrix(path);
  EXPECT_EQ(back.columns, im.columns);
  EXPECT_EQ(back.hidden_size, 64);

  const std::string out = fresh_dir("int4_imatrix");
  model::QuantizeOptions o;
  o.type = "int4";
  o.group = 32;
  o.imatrix = &back.columns;
  model::write_quantized_model(kTiny, out, o);
  EXPECT_TRUE(fs::exists(out + "/config.json"));

  // An imatrix of another model (wrong widths / names) is refused; nothing is written.
  std::vector<std::pair<std::string, std::vector<float>>> other = {
      {"model.layers.0.self_attn.q_a_proj", std::vector<float>(65, 1.0f)}};
  o.imatrix = &other;
  const std::string bad = fresh_dir("bad_imatrix");
  EXPECT_THROW(model::write_quantized_model(kTiny, bad, o), Error);
  EXPECT_FALSE(fs::exists(bad));
  other = {{"model.layers.9.mlp.up_proj", std::vector<float>(64, 1.0f)}};
  EXPECT_THROW(model::write_quantized_model(kTiny, bad, o), Error);
  EXPECT_FALSE(fs::exists(bad));
  formats::write_text_file(path, "not safetensors");
  EXPECT_THROW(model::read_imatrix(path), Error);
}

namespace {

// The tiny model's Linear modules.
std::vector<std::string> linear_modules(const model::Model& m) {
  model::ModelWeights w = m.weights();
  std::vector<std::string> out;
  model::visit_weights(m.config(), w, true, [&](model::WeightSlot& s) {
    if (s.kind == model::SlotKind::linear) out.push_back(s.name.substr(0, s.name.size() - 7));
  });
  return out;
}

// llama.cpp's GGUF imatrix, written here from its definition: "<name>.in_sum2" f32 ne [cols,
// n_mat], "<name>.counts" f32 ne [1, n_mat].
struct LlamaEntry {
  std::string name;
  int64_t cols, n_mat;
  std::vector<float> sums, counts;
};

void write_llama_gguf_imatrix(const std::string& path, const std::vector<LlamaEntry>& es,
                              const std::string& type = "imatrix") {
  formats::GgufMetadata md;
  md.add("general.type", formats::gguf_string(type));
  md.add("imatrix.chunk_count", formats::gguf_u32(3));
  md.add("imatrix.chunk_size", formats::gguf_u32(32));
  std::vector<formats::GgufTensorSpec> specs;
  std::vector<const std::vector<float>*> data;
  for (const LlamaEntry& e : es) {
    specs.push_back({e.name + ".in_sum2", 0, {uint64_t(e.cols), uint64_t(e.n_mat)}});
    data.push_back(&e.sums);
    specs.push_back({e.name + ".counts", 0, {1, uint64_t(e.n_mat)}});
    data.push_back(&e.counts);
  }
  formats::write_gguf(path, md, specs, [&](size_t i, const formats::GgufSink& sink) {
    sink(data[i]->data(), data[i]->size() * 4);
  });
}

// The legacy imatrix.dat: per entry the mean x² times ncall.
void write_llama_dat_imatrix(const std::string& path, const std::vector<LlamaEntry>& es,
                             int32_t ncall) {
  std::string b;
  auto i32 = [&](int32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  i32(int32_t(es.size()));
  for (const LlamaEntry& e : es) {
    i32(int32_t(e.name.size()));
    b += e.name;
    i32(ncall);
    i32(int32_t(e.sums.size()));
    for (size_t i = 0; i < e.sums.size(); ++i) {
      const float c = e.counts[i / size_t(e.cols)];
      const float v = c > 0 ? e.sums[i] / c * float(ncall) : float(ncall);  // "1" when unseen
      b.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  i32(3);  // chunks
  i32(4);
  b += "data";
  formats::write_text_file(path, b);
}

}  // namespace

TEST(Quantize, LlamaCppImatricesAreReadInBothFormats) {
  const model::Model m = model::Model::load(kTiny);
  const std::vector<std::string> modules = linear_modules(m);
  const int64_t d = m.config().hidden_size, n_exp = m.config().n_routed_experts;
  std::vector<LlamaEntry> es = {{"blk.0.attn_q_a.weight", d, 1, {}, {10}},
                                {"blk.1.ffn_up_exps.weight", d, n_exp, {}, {}},
                                {"blk.0.attn_k_b.weight", 16, 1, std::vector<float>(16, 1), {1}}};
  for (int64_t i = 0; i < d; ++i) es[0].sums.push_back(float(i + 1));
  for (int64_t e = 0; e < n_exp; ++e) {
    es[1].counts.push_back(e == 2 ? 0.0f : float(e + 1));
    for (int64_t i = 0; i < d; ++i) es[1].sums.push_back(e == 2 ? 0.0f : float(e * 100 + i));
  }
  const std::string gguf = testing::TempDir() + "/tern_llama_imatrix.gguf";
  const std::string dat = testing::TempDir() + "/tern_llama_imatrix.dat";
  write_llama_gguf_imatrix(gguf, es);
  write_llama_dat_imatrix(dat, es, 7);
  for (const std::string& path : {gguf, dat}) {
    int64_t unmatched = -1;
    const model::Imatrix im = model::read_any_imatrix(path, modules, &unmatched);
    EXPECT_EQ(unmatched, 1) << "attn_k_b: tern's layout keeps kv_b_proj whole";
    std::map<std::string, std::vector<float>> by(im.columns.begin(), im.columns.end());
    const bool is_gguf = path == gguf;
    EXPECT_EQ(by.size(), size_t(1 + (is_gguf ? n_exp - 1 : n_exp)))
        << "GGUF says which experts the calibration never reached; .dat stores ones for them";
    const std::vector<float>& q = by.at("model.layers.0.self_attn.q_a_proj");
    for (int64_t i = 0; i < d; ++i) EXPECT_FLOAT_EQ(q[size_t(i)], float(i + 1) / 10) << i;
    const std::vector<float>& up3 = by.at("model.layers.1.mlp.experts.3.up_proj");
    for (int64_t i = 0; i < d; ++i) EXPECT_FLOAT_EQ(up3[size_t(i)], float(300 + i) / 4) << i;
    EXPECT_EQ(by.count("model.layers.1.mlp.experts.2.up_proj"), is_gguf ? 0u : 1u);
  }

  // quantize reads the file itself, and rounds as with the same values handed over.
  int64_t unmatched = 0;
  const model::Imatrix im = model::read_any_imatrix(gguf, modules, &unmatched);
  model::QuantizeOptions o;
  o.type = "int4";
  o.group = 32;
  o.imatrix_file = gguf;
  const std::string a = fresh_dir("llama_imatrix_a"), b = fresh_dir("llama_imatrix_b");
  const model::QuantizeSummary s = model::write_quantized_model(kTiny, a, o);
  EXPECT_EQ(s.notes.size(), 1u) << "the unmatched entry is reported";
  o.imatrix_file.clear();
  o.imatrix = &im.columns;
  model::write_quantized_model(kTiny, b, o);
  const auto ca = formats::Checkpoint::open(a), cb = formats::Checkpoint::open(b);
  for (const std::string t : {"model.layers.0.self_attn.q_a_proj.weight_scale",
                              "model.layers.1.mlp.experts.3.up_proj.weight_packed"}) {
    const Tensor& x = ca.get(t);
    const Tensor& y = cb.get(t);
    ASSERT_EQ(x.nbytes(), y.nbytes());
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.nbytes()), 0) << t;
  }

  // Malformed or foreign files: refused by name, nothing written.
  const std::string bad = testing::TempDir() + "/tern_llama_bad.gguf";
  write_llama_gguf_imatrix(bad, es, "model");
  EXPECT_THROW(model::read_any_imatrix(bad, modules, &unmatched), Error);
  std::vector<LlamaEntry> wrong = {es[1]};
  wrong[0].n_mat = n_exp / 2;
  wrong[0].sums.resize(size_t(d * n_exp / 2));
  wrong[0].counts.resize(size_t(n_exp / 2));
  write_llama_gguf_imatrix(bad, wrong);
  EXPECT_THROW(model::read_any_imatrix(bad, modules, &unmatched), Error) << "expert count";
  write_llama_gguf_imatrix(bad, {es[2]});
  EXPECT_THROW(model::read_any_imatrix(bad, modules, &unmatched), Error) << "nothing matches";
  const std::string trunc = testing::TempDir() + "/tern_llama_bad.dat";
  formats::write_text_file(trunc, formats::read_text_file(dat).substr(0, 100));
  EXPECT_THROW(model::read_any_imatrix(trunc, modules, &unmatched), Error);
  o.imatrix = nullptr;
  o.imatrix_file = trunc;
  const std::string none = fresh_dir("llama_imatrix_bad");
  EXPECT_THROW(model::write_quantized_model(kTiny, none, o), Error);
  EXPECT_FALSE(fs::exists(none));
}

TEST(Quantize, BadOptionsAreRefusedBeforeWriting) {
  const std::string out = fresh_dir("bad");
  model::QuantizeOptions o;
  o.type = "int3";
  EXPECT_THROW(model::write_quantized_model(kTiny, out, o), Error);
  o.type = "int4";
  o.group = 48;
  EXPECT_THROW(model::write_quantized_model(kTiny, out, o), Error);
  o.group = 32;
  o.keep_hi = {"attention"};
  EXPECT_THROW(model::write_quantized_model(kTiny, out, o), Error);
  EXPECT_FALSE(fs::exists(out));
}
