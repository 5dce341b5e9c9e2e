// MoE expert pruning (model/prune_experts.h) and routing statistics (model/routing_stats.h): the
// plan on hand-made statistics (which experts go, per group, per layer or overall, and the
// refusals), keep-ratio 1.0 as the identity (the same logits), a pruned model whose router rows,
// correction biases and experts are the kept originals renumbered, merging as the
// frequency-weighted mean, and the statistics file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors_writer.h"
#include "formats/text_file.h"
#include "infer/perplexity.h"
#include "model/load_weights.h"
#include "model/model.h"
#include "model/prune_experts.h"
#include "model/routing_stats.h"

using namespace tern;
namespace fs = std::filesystem;

namespace {

// v3_tiny with its 8 experts in 2 groups of 4 (the golden has 4 groups of 2, which noaux_tc
// routing cannot lose an expert from): a copy, made once.
std::string tiny_dir() {
  static const std::string dir = [] {
    const std::string src = std::string(TERN_TEST_DATA) + "/golden/v3_tiny";
    // Per process: ctest runs these tests in parallel processes.
    const std::string d = testing::TempDir() + "/tern_prune_v3_tiny_g2_" + std::to_string(::getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), d + "/" + e.path().filename().string());
    nlohmann::json cfg = nlohmann::json::parse(formats::read_text_file(d + "/config.json"));
    cfg["n_group"] = 2;
    cfg["topk_group"] = 1;
    formats::write_text_file(d + "/config.json", cfg.dump());
    // As in a training checkpoint's directory: optimizer state that is not the model's.
    formats::write_safetensors(d + "/optimizer.safetensors",
                               {{"exp_avg.model.norm.weight", Tensor::zeros(DType::f32, {64})}});
    return d;
  }();
  return dir;
}

std::vector<int32_t> tokens(int64_t n, int64_t vocab) {
  std::mt19937 g(9);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = int32_t(g() % uint32_t(vocab));
  return ids;
}

// 8 experts in 2 groups of 4, top-2 within the best group, layers 1 and 2 MoE, MTP layer 3.
model::ModelConfig tiny_config() {
  return model::ModelConfig::from_file(tiny_dir() + "/config.json");
}

model::RoutingStats hand_stats() {
  model::RoutingStats s;
  s.layers = {1, 2};
  s.tokens = 100;
  s.counts = {{10, 20, 30, 40, 50, 60, 70, 80}, {80, 70, 60, 50, 40, 30, 20, 10}};
  s.weights = {{1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2, 1.5}};
  return s;
}

model::RoutingStats collect(const model::Model& m) {
  model::RoutingCollector col(m);
  infer::perplexity(m, tokens(96, m.config().vocab_size), {32, 32, 64});
  return col.result();
}

std::string fresh(const std::string& name) {
  const std::string d = testing::TempDir() + "/tern_prune_" + name;
  fs::remove_all(d);
  return d;
}

}  // namespace

TEST(PrunePlan, KeepsTheMostUsedExpertsOfEveryGroup) {
  const model::ModelConfig c = tiny_config();
  const model::RoutingStats s = hand_stats();
  const model::PrunePlan per = model::plan_pruning(c, s, {0.5, true, false});
  EXPECT_EQ(per.experts, 4);
  // Groups {0..3} and {4..7}; per layer the two heaviest of each group stay.
  EXPECT_EQ(per.keep.at(1), (std::vector<int32_t>{2, 3, 6, 7}));
  EXPECT_EQ(per.keep.at(2), (std::vector<int32_t>{0, 1, 4, 5}));
  // Overall: usage summed over layers (9, 9, 9, 9, 9, 9, 9, 9.5): ties keep the lower ids.
  EXPECT_EQ(per.keep.at(3), (std::vector<int32_t>{0, 1, 4, 7})) << "MTP: the overall ranking";
  const model::PrunePlan all = model::plan_pruning(c, s, {0.5, false, false});
  EXPECT_EQ(all.keep.at(1), (std::vector<int32_t>{0, 1, 4, 7}));
  EXPECT_EQ(all.keep.at(2), all.keep.at(1));
  const model::PrunePlan same = model::plan_pruning(c, s, {1.0, true, false});
  EXPECT_EQ(same.keep.at(1), (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(PrunePlan, RefusesWhatRoutingCannotServe) {
  const model::ModelConfig c = tiny_config();
  auto refused = [&](double keep, const model::RoutingStats& s, const std::string& needle) {
    try {
      model::plan_pruning(c, s, {keep, true, false});
      ADD_FAILURE() << "keep " << keep << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused(0.25, hand_stats(), "keep at least 2 per group");
  refused(0.1, hand_stats(), "fewer than the 2 each token is routed to");
  refused(0.0, hand_stats(), "(0, 1]");
  refused(1.5, hand_stats(), "(0, 1]");
  model::RoutingStats other = hand_stats();
  other.layers = {1};
  other.counts.pop_back();
  other.weights.pop_back();
  refused(0.5, other, "another model");
  model::RoutingStats wide = hand_stats();
  for (auto& v : wide.counts) v.push_back(1);
  for (auto& v : wide.weights) v.push_back(1);
  refused(0.5, wide, "another model");
}

TEST(Prune, KeepingEveryExpertIsTheIdentity) {
  const model::Model m = model::Model::load(tiny_dir());
  const model::RoutingStats s = collect(m);
  ASSERT_EQ(s.layers, (std::vector<int64_t>{1, 2}));
  for (size_t l = 0; l < s.layers.size(); ++l) {
    int64_t chosen = 0;
    for (int64_t n : s.counts[l]) chosen += n;
    EXPECT_EQ(chosen, s.tokens * 2) << "every token routed to K = 2 experts";
  }
  const std::string out = fresh("identity");
  model::write_pruned_model(tiny_dir(), out, model::plan_pruning(m.config(), s, {1.0, true, false}), s,
                            false);
  const model::Model p = model::Model::load(out);
  const infer::Comparison cmp =
      infer::compare_models(p, m, tokens(64, m.config().vocab_size), {32, 16, 64});
  EXPECT_EQ(cmp.kl_mean(), 0.0);
  EXPECT_EQ(cmp.top1_agreement(), 1.0);
  EXPECT_EQ(cmp.model.nll_sum, cmp.ref.nll_sum);
}

TEST(Prune, PrunedModelHoldsTheKeptExpertsRenumbered) {
  const model::Model m = model::Model::load(tiny_dir());
  const model::RoutingStats s = hand_stats();
  const model::PrunePlan plan = model::plan_pruning(m.config(), s, {0.5, true, false});
  const std::string out = fresh("half");
  const model::PruneSummary sum = model::write_pruned_model(tiny_dir(), out, plan, s, false);
  EXPECT_EQ(sum.experts_after, 4);
  EXPECT_LT(sum.bytes_out, sum.bytes_in);
  const nlohmann::json cfg = nlohmann::json::parse(formats::read_text_file(out + "/config.json"));
  EXPECT_EQ(cfg["n_routed_experts"], 4);
  const auto before = formats::Checkpoint::open(tiny_dir()), after = formats::Checkpoint::open(out);
  auto equal_bytes = [](const Tensor& a, const Tensor& b, int64_t row_a = 0, int64_t row_b = 0,
                        int64_t rows = -1) {
    const int64_t row = a.nbytes() / a.shape()[0];
    const int64_t n = rows < 0 ? a.shape()[0] : rows;
    return std::memcmp(static_cast<const uint8_t*>(a.data()) + row_a * row,
                       static_cast<const uint8_t*>(b.data()) + row_b * row, size_t(n * row)) == 0;
  };
  for (int64_t layer : {1, 2, 3}) {
    const std::string p = "model.layers." + std::to_string(layer) + ".mlp.";
    const std::vector<int32_t>& keep = plan.keep.at(layer);
    const Tensor& g0 = before.get(p + "gate.weight");
    const Tensor& g1 = after.get(p + "gate.weight");
    ASSERT_EQ(g1.shape()[0], 4);
    for (size_t n = 0; n < keep.size(); ++n) {
      EXPECT_TRUE(equal_bytes(g1, g0, int64_t(n), keep[n], 1)) << p << " router row " << n;
      EXPECT_EQ(after.get(p + "gate.e_score_correction_bias").data_as<const float>()[n],
                before.get(p + "gate.e_score_correction_bias").data_as<const float>()[keep[n]]);
      for (const char* proj : {"gate_proj", "up_proj", "down_proj"})
        EXPECT_TRUE(equal_bytes(after.get(p + "experts." + std::to_string(n) + "." + proj + ".weight"),
                                before.get(p + "experts." + std::to_string(keep[n]) + "." + proj +
                                           ".weight")))
            << p << n << proj;
    }
    EXPECT_FALSE(after.has(p + "experts.4.up_proj.weight"));
  }
  EXPECT_FALSE(after.has("exp_avg.model.norm.weight")) << "optimizer state is not copied";
  const model::Model pm = model::Model::load(out);
  const infer::PerplexityResult r = infer::perplexity(pm, tokens(64, 256), {32, 16, 64});
  EXPECT_TRUE(std::isfinite(r.perplexity()));
}

TEST(Prune, MergingFoldsDroppedExpertsInByFrequency) {
  const model::Model m = model::Model::load(tiny_dir());
  const model::RoutingStats s = hand_stats();
  model::PrunePlan plan = model::plan_pruning(m.config(), s, {0.5, true, true});
  const std::string out = fresh("merge");
  const model::PruneSummary sum = model::write_pruned_model(tiny_dir(), out, plan, s, true);
  EXPECT_EQ(sum.merged, 3 * 4) << "4 dropped experts in each of 3 MoE layers (MTP included)";
  // Recompute layer 1's merges: each dropped expert goes to the kept one whose router row is
  // most similar; the kept expert becomes the count-weighted mean (count + 1).
  const model::ModelWeights& w = m.weights();
  const model::MoeWeights& moe = w.layers[1].moe;
  const std::vector<int32_t>& keep = plan.keep.at(1);
  auto row = [&](int64_t e) {
    const Tensor t = model::dequantize(moe.gate.view.row_range(e, 1));
    return std::vector<float>(t.data_as<const float>(), t.data_as<const float>() + t.numel());
  };
  std::map<int32_t, std::vector<int32_t>> into;
  for (int32_t d = 0; d < 8; ++d) {
    if (std::find(keep.begin(), keep.end(), d) != keep.end()) continue;
    const std::vector<float> rd = row(d);
    double best = -2;
    int32_t target = -1;
    for (int32_t k : keep) {
      const std::vector<float> rk = row(k);
      double ab = 0, aa = 0, bb = 0;
      for (size_t i = 0; i < rd.size(); ++i) ab += rd[i] * rk[i], aa += rd[i] * rd[i], bb += rk[i] * rk[i];
      if (ab / std::sqrt(aa * bb) > best) best = ab / std::sqrt(aa * bb), target = k;
    }
    into[target].push_back(d);
  }
  const auto after = formats::Checkpoint::open(out);
  for (size_t n = 0; n < keep.size(); ++n) {
    const int32_t k = keep[n];
    const Tensor got = model::dequantize([&] {
      const Tensor& t = after.get("model.layers.1.mlp.experts." + std::to_string(n) + ".up_proj.weight");
      return kernels::WeightView{t.dtype(), t.shape()[0], t.shape()[1], t.data()};
    }());
    const Tensor base = model::dequantize(moe.experts[size_t(k)].up_proj.view);
    std::vector<double> want(size_t(base.numel()));
    double total = 1.0 + double(s.counts[0][size_t(k)]);
    for (int64_t i = 0; i < base.numel(); ++i) want[size_t(i)] = total * base.data_as<const float>()[i];
    for (int32_t d : into[k]) {
      const double f = 1.0 + double(s.counts[0][size_t(d)]);
      const Tensor o = model::dequantize(moe.experts[size_t(d)].up_proj.view);
      for (int64_t i = 0; i < o.numel(); ++i) want[size_t(i)] += f * o.data_as<const float>()[i];
      total += f;
    }
    for (int64_t i = 0; i < got.numel(); ++i)
      ASSERT_NEAR(got.data_as<const float>()[i], want[size_t(i)] / total,
                  into[k].empty() ? 0.0 : 1e-2 * std::fabs(want[size_t(i)] / total) + 1e-6)
          << "expert " << k << " element " << i;
  }
  EXPECT_NO_THROW(model::Model::load(out));
}

TEST(RoutingStats, FileRoundTripsAndBadFilesAreRefused) {
  const model::RoutingStats s = hand_stats();
  const std::string path = testing::TempDir() + "/tern_routing.json";
  model::write_routing_stats(path, s);
  const model::RoutingStats back = model::read_routing_stats(path);
  EXPECT_EQ(back.layers, s.layers);
  EXPECT_EQ(back.counts, s.counts);
  EXPECT_EQ(back.weights, s.weights);
  EXPECT_EQ(back.tokens, s.tokens);
  formats::write_text_file(path, R"({"format": "tern-routing-stats", "version": 1, "tokens": 1,
    "layers": [{"layer": 1, "counts": [1, 2], "weights": [1.0]}]})");
  EXPECT_THROW(model::read_routing_stats(path), Error);
  formats::write_text_file(path, R"({"format": "other"})");
  EXPECT_THROW(model::read_routing_stats(path), Error);
}
