// Sliding-window perplexity against the reference model's own logits (tests/golden, computed by
// the independent float64 implementation): one window over the whole case gives exactly its
// mean NLL; overlapping windows score every target once; bad options are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/npy.h"
#include "infer/perplexity.h"
#include "infer/saved_logprobs.h"
#include "model/quantize_checkpoint.h"
#include <filesystem>

using namespace tern;

namespace {
std::string golden(const char* name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}
}  // namespace

TEST(Perplexity, OneWindowEqualsTheReferenceLogits) {
  for (const char* name : {"v3_tiny", "qwen2_tiny"}) {
    const model::Model m = model::Model::load(golden(name));
    std::ifstream in(golden(name) + "/case.json");
    const auto ids = nlohmann::json::parse(in).at("ids").get<std::vector<int32_t>>();
    const Tensor ref = formats::read_npy(golden(name) + "/logits.npy");
    const int64_t T = int64_t(ids.size()), V = m.config().vocab_size;
    ASSERT_EQ(ref.numel(), T * V);
    // numpy-style: mean over t >= 1 of logsumexp(row t-1) - row t-1 [ids[t]], in double.
    double nll = 0;
    for (int64_t t = 1; t < T; ++t) {
      std::vector<double> row(static_cast<size_t>(V));
      for (int64_t v = 0; v < V; ++v)
        row[size_t(v)] = ref.dtype() == DType::f64
                             ? static_cast<const double*>(ref.data())[(t - 1) * V + v]
                             : double(static_cast<const float*>(ref.data())[(t - 1) * V + v]);
      const double mx = *std::max_element(row.begin(), row.end());
      double sum = 0;
      for (double x : row) sum += std::exp(x - mx);
      nll += mx + std::log(sum) - row[size_t(ids[size_t(t)])];
    }
    const double want = std::exp(nll / double(T - 1));
    const infer::PerplexityResult got = infer::perplexity(m, ids, {T, T, 7});
    EXPECT_EQ(got.scored, T - 1);
    EXPECT_EQ(got.windows, 1);
    EXPECT_NEAR(got.perplexity() / want, 1.0, 1e-5) << name;
    // Overlapping windows: every target once, each with less context (so a different value).
    const infer::PerplexityResult slid = infer::perplexity(m, ids, {8, 3, 4});
    EXPECT_EQ(slid.scored, T - 1);
    EXPECT_GT(slid.windows, 1);
    EXPECT_TRUE(std::isfinite(slid.perplexity()));
  }
}

TEST(Perplexity, RefusesWhatItCannotMeasure) {
  const model::Model m = model::Model::load(golden("v3_tiny"));
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  EXPECT_THROW(infer::perplexity(m, std::vector<int32_t>{1}, {}), Error);
  EXPECT_THROW(infer::perplexity(m, ids, {1, 1}), Error);
  EXPECT_THROW(infer::perplexity(m, ids, {4, 5}), Error);
  EXPECT_THROW(infer::perplexity(m, ids, {m.config().max_position_embeddings + 1, 1}), Error);
  EXPECT_THROW(infer::perplexity(m, std::vector<int32_t>{1, int32_t(m.config().vocab_size)}, {}),
               Error);
}

TEST(Perplexity, KlDivergenceAgainstAReferenceModel) {
  const model::Model a = model::Model::load(golden("qwen2_tiny"));
  const model::Model b = model::Model::load(golden("llama3_tiny"));  // same 256-token vocabulary
  std::ifstream in(golden("qwen2_tiny") + "/case.json");
  const auto ids = nlohmann::json::parse(in).at("ids").get<std::vector<int32_t>>();
  const int64_t T = int64_t(ids.size()), V = a.config().vocab_size;

  const infer::Comparison self = infer::compare_models(a, a, ids, {T, T, 5});
  EXPECT_EQ(self.kl_mean(), 0.0);
  EXPECT_EQ(self.top1_agreement(), 1.0);
  EXPECT_EQ(self.model.perplexity(), self.ref.perplexity());

  // Independently: whole-sequence logits from each model (the forward the golden tests check),
  // KL(ref || model) per position in double.
  std::vector<float> la(size_t(T * V)), lb(size_t(T * V));
  model::KvCache ca = a.make_cache(T), cb = b.make_cache(T);
  a.forward(ids, ca, la);
  b.forward(ids, cb, lb);
  double kl_sum = 0;
  int64_t agree = 0;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const float* p = la.data() + t * V;
    const float* q = lb.data() + t * V;
    double mp = -1e300, mq = -1e300;
    for (int64_t v = 0; v < V; ++v)
      mp = std::max(mp, double(p[v])), mq = std::max(mq, double(q[v]));
    double sp = 0, sq = 0;
    for (int64_t v = 0; v < V; ++v) sp += std::exp(p[v] - mp), sq += std::exp(q[v] - mq);
    double kl = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double lp = p[v] - mp - std::log(sp), lq = q[v] - mq - std::log(sq);
      kl += std::exp(lq) * (lq - lp);
    }
    kl_sum += kl;
    agree += std::max_element(p, p + V) - p == std::max_element(q, q + V) - q;
  }
  const infer::Comparison c = infer::compare_models(a, b, ids, {T, T, 5});
  ASSERT_EQ(int64_t(c.kl.size()), T - 1);
  EXPECT_NEAR(c.kl_mean(), kl_sum / double(T - 1), 1e-6) << "chunked rows round slightly apart";
  EXPECT_EQ(c.top1_agree, agree);
  EXPECT_GT(c.kl_mean(), 0.0);
  EXPECT_LE(c.kl_quantile(0.5), c.kl_quantile(0.99));
  EXPECT_EQ(c.kl_quantile(1.0), *std::max_element(c.kl.begin(), c.kl.end()));
  EXPECT_NEAR(c.model.perplexity(), infer::perplexity(a, ids, {T, T, 5}).perplexity(), 1e-9)
      << "the same windows, the same number";
  EXPECT_THROW(infer::compare_models(a, model::Model::load(golden("v2_tiny")), ids, {T, T}), Error)
      << "vocabularies differ";
}

// Saved reference log-probabilities (infer/saved_logprobs.h): comparing against the file gives
// what comparing against the model gives, within f16 rounding; another text, window setting or
// a truncated file is refused.
TEST(Perplexity, SavedReferenceLogProbabilitiesStandInForTheModel) {
  const model::Model m = model::Model::load(std::string(TERN_TEST_DATA) + "/golden/v3_tiny");
  // The model measured: the same weights rounded to int4, so the divergence is not zero.
  const std::string q_dir = testing::TempDir() + "/tern_saved_ref_int4";
  std::filesystem::remove_all(q_dir);
  model::QuantizeOptions qo;
  qo.type = "int4";
  qo.group = 32;
  model::write_quantized_model(std::string(TERN_TEST_DATA) + "/golden/v3_tiny", q_dir, qo);
  const model::Model q = model::Model::load(q_dir);
  std::vector<int32_t> ids(80);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 11) % 256);
  const infer::PerplexityOptions o{32, 16, 64};
  const std::string path = testing::TempDir() + "/tern_ref_logits.bin";
  const infer::PerplexityResult saved = infer::save_logprobs(m, ids, o, path);
  EXPECT_EQ(saved.nll_sum, infer::perplexity(m, ids, o).nll_sum);
  const infer::Comparison direct = infer::compare_models(q, m, ids, o);
  const infer::Comparison from_file = infer::compare_with_saved(q, ids, o, path);
  ASSERT_EQ(from_file.kl.size(), direct.kl.size());
  EXPECT_EQ(from_file.model.nll_sum, direct.model.nll_sum);
  EXPECT_NEAR(from_file.ref.perplexity(), direct.ref.perplexity(), 1e-3 * direct.ref.perplexity());
  EXPECT_GT(direct.kl_mean(), 1e-4);
  EXPECT_NEAR(from_file.kl_mean(), direct.kl_mean(), 1e-2 * direct.kl_mean() + 1e-5);
  EXPECT_NEAR(from_file.top1_agreement(), direct.top1_agreement(), 0.05);

  std::vector<int32_t> other = ids;
  other[5] += 1;
  EXPECT_THROW(infer::compare_with_saved(q, other, o, path), Error);
  EXPECT_THROW(infer::compare_with_saved(q, ids, {32, 8, 64}, path), Error);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 2);
  EXPECT_THROW(infer::compare_with_saved(q, ids, o, path), Error);
  std::ofstream(path) << "junk";
  EXPECT_THROW(infer::compare_with_saved(q, ids, o, path), Error);
}
