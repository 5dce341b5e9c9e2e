// Whole-model logits against the independent Python reference (tests/reference, fixtures in
// tests/golden): every architecture, both MLA forms, FP8 block weights, GGUF quantised weights,
// routing decisions and the MTP module.
//
// Tolerance: the reference computes in float64; the engine accumulates in f32 (eps 6e-8)
// through <= 4 blocks of width <= 288, so each op's relative error is ~sqrt(K)*eps ~ 1e-6 and
// a handful of them compound to a few 1e-6 of the logits' magnitude (observed: <= 1e-6 of
// max|logit|). We allow 3e-5 * max|logit| + 1e-6: ~10x headroom, while a wrong formula (a
// missing scale, a swapped RoPE pair, a wrong expert) moves logits by 1e-2 or more.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fixtures.h"
#include "formats/npy.h"
#include "kernels/bf16_decode.h"
#include "kernels/matmul.h"
#include "model/load_weights.h"
#include "model/model.h"

using namespace tern;
using namespace tern::model;
using tern::test::golden;
using tern::test::read_case;

namespace {

std::string model_path(const std::string& dir) {
  return std::filesystem::exists(dir + "/model.gguf") ? dir + "/model.gguf" : dir;
}

void expect_close(const Tensor& want, const float* got, const std::string& what) {
  float max_abs = 0, worst = 0;
  const float* w = want.data_as<float>();
  for (int64_t i = 0; i < want.numel(); ++i) max_abs = std::max(max_abs, std::fabs(w[i]));
  const float tol = 3e-5f * max_abs + 1e-6f;
  int64_t bad = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float err = std::fabs(w[i] - got[i]);
    worst = std::max(worst, err);
    if (!(err <= tol)) ++bad;
  }
  std::printf("%-40s worst |error| %.3g, tolerance %.3g\n", what.c_str(), double(worst),
              double(tol));
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.numel() << " values off; worst error "
                    << worst << " vs tolerance " << tol;
}

struct ModelRun {
  Tensor logits, hidden;
  std::vector<int32_t> routed;
};

ModelRun run_model(Model& m, const std::vector<int32_t>& ids, MlaMode mode) {
  const ModelConfig& c = m.config();
  const int64_t T = int64_t(ids.size());
  ModelRun r{Tensor::zeros(DType::f32, {T, c.vocab_size}),
             Tensor::zeros(DType::f32, {T, c.hidden_size}),
             {}};
  r.routed.assign(size_t(T * std::max<int64_t>(1, c.num_experts_per_tok)), -1);
  KvCache cache = m.make_cache(T);
  ForwardOptions opts;
  opts.mla_mode = mode;
  opts.hidden_out = r.hidden.span_as<float>();
  opts.routed_out = r.routed;
  m.forward(ids, cache, r.logits.span_as<float>(), opts);
  return r;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, LogitsMatchReference) {
  const std::string dir = golden(GetParam());
  const nlohmann::json cs = read_case(dir);
  const std::vector<int32_t> ids = cs.at("ids").get<std::vector<int32_t>>();
  const bool has_mtp = cs.contains("mtp_logits");
  Model m = Model::load(model_path(dir), LoadOptions{has_mtp, /*mla_naive=*/true});
  const Tensor want = formats::read_npy(dir + "/" + cs.at("logits").get<std::string>());
  ASSERT_EQ(want.shape(), (Shape{int64_t(ids.size()), m.config().vocab_size}));
  std::vector<MlaMode> modes = {MlaMode::absorbed};
  if (m.config().is_mla()) modes.push_back(MlaMode::naive);
  ModelRun first;
  for (MlaMode mode : modes) {
    ModelRun r = run_model(m, ids, mode);
    const std::string tag = mode == MlaMode::absorbed ? "absorbed" : "naive";
    expect_close(want, r.logits.data_as<float>(), GetParam() + " logits (" + tag + ")");
    expect_close(formats::read_npy(dir + "/hidden.npy"), r.hidden.data_as<float>(),
                 GetParam() + " hidden (" + tag + ")");
    if (cs.contains("router_topk_idx")) {
      const auto want_idx = cs.at("router_topk_idx").get<std::vector<std::vector<int32_t>>>();
      const int64_t K = m.config().num_experts_per_tok;
      for (size_t t = 0; t < want_idx.size(); ++t) {
        std::vector<int32_t> got(r.routed.begin() + int64_t(t) * K,
                                 r.routed.begin() + int64_t(t + 1) * K);
        std::vector<int32_t> exp = want_idx[t];
        std::sort(got.begin(), got.end());
        std::sort(exp.begin(), exp.end());
        EXPECT_EQ(got, exp) << GetParam() << " routing of token " << t << " (" << tag << ")";
      }
    }
    if (mode == MlaMode::absorbed)
      first = std::move(r);
    else {  // the two MLA forms agree to f32 rounding, much tighter than the reference tolerance
      float max_abs = 0, worst = 0;
      for (int64_t i = 0; i < first.logits.numel(); ++i) {
        max_abs = std::max(max_abs, std::fabs(first.logits.data_as<float>()[i]));
        worst = std::max(
            worst, std::fabs(first.logits.data_as<float>()[i] - r.logits.data_as<float>()[i]));
      }
      EXPECT_LE(worst, 2e-5f * max_abs + 1e-6f) << GetParam() << ": absorbed vs naive MLA";
    }
  }
  if (has_mtp) {
    const Tensor want_mtp = formats::read_npy(dir + "/" + cs.at("mtp_logits").get<std::string>());
    Tensor got = Tensor::zeros(DType::f32, {int64_t(ids.size()) - 1, m.config().vocab_size});
    m.forward_mtp(ids, first.hidden.span_as<float>(), got.span_as<float>());
    expect_close(want_mtp, got.data_as<float>(), GetParam() + " MTP logits");
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden,
                         ::testing::Values("v3_tiny", "v2_lite_tiny", "v2_tiny", "v3_fp8",
                                           "qwen2_tiny", "llama3_tiny", "qwen2_gguf",
                                           "deepseek2_gguf", "llama3_gguf", "deepseek3_gguf"));

TEST(GoldenDecode, IncrementalDecodeMatchesOneShot) {
  // Feeding tokens one at a time through the cache must give the same logits as one pass.
  for (const char* name : {"v3_tiny", "qwen2_tiny"}) {
    const std::string dir = golden(name);
    const auto ids = read_case(dir).at("ids").get<std::vector<int32_t>>();
    Model m = Model::load(dir);
    const int64_t V = m.config().vocab_size, T = int64_t(ids.size());
    ModelRun full = run_model(m, ids, MlaMode::absorbed);
    KvCache cache = m.make_cache(T);
    std::vector<float> step(static_cast<size_t>(V));
    for (int64_t t = 0; t < T; ++t) {
      m.forward(std::span<const int32_t>(ids.data() + t, 1), cache, step);
      for (int64_t v = 0; v < V; ++v)
        ASSERT_NEAR(step[size_t(v)], full.logits.data_as<float>()[t * V + v], 1e-4f)
            << name << " t=" << t;
    }
    EXPECT_THROW(m.forward(std::span<const int32_t>(ids.data(), 1), cache, step), Error)
        << "cache full";
  }
}

TEST(GoldenDecode, ChunkedPrefillMatchesTokenByToken) {
  // 300 tokens cross the internal chunk boundary (Model::kMaxChunkTokens) in one forward call
  // and in the MTP pass; feeding the same tokens one at a time must agree.
  ModelConfig cfg = ModelConfig::from_file(golden("v3_tiny"));
  cfg.max_position_embeddings = 4096;  // the fixture declares 32; lift it to reach the chunk size
  const auto src = open_safetensors_source(golden("v3_tiny"));
  Model m(cfg, load_weights(cfg, *src, /*include_mtp=*/true));
  const int64_t V = m.config().vocab_size, d = m.config().hidden_size, T = 300;
  ASSERT_GT(T, Model::kMaxChunkTokens);
  std::vector<int32_t> ids(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) ids[size_t(i)] = int32_t((i * 37 + 11) % V);
  std::vector<float> all(static_cast<size_t>(T * V)), hidden(static_cast<size_t>(T * d)),
      step(static_cast<size_t>(V));
  KvCache cache = m.make_cache(T);
  ForwardOptions opts;
  opts.hidden_out = hidden;
  m.forward(ids, cache, all, opts);
  for (int64_t t = 0; t < T; t += 23) {  // spot-check positions on both sides of the boundary
    KvCache c2 = m.make_cache(T);
    std::vector<float> prefix(static_cast<size_t>((t + 1) * V));
    m.forward(std::span<const int32_t>(ids.data(), size_t(t + 1)), c2, prefix);
    for (int64_t v = 0; v < V; ++v)
      ASSERT_NEAR(prefix[size_t(t * V + v)], all[size_t(t * V + v)], 1e-4f) << t;
  }
  std::vector<float> mtp(static_cast<size_t>((T - 1) * V)), mtp_short(static_cast<size_t>(9 * V));
  m.forward_mtp(ids, hidden, mtp);
  m.forward_mtp(std::span<const int32_t>(ids.data(), 10), hidden, mtp_short);
  for (int64_t i = 0; i < 9 * V; ++i) ASSERT_NEAR(mtp[size_t(i)], mtp_short[size_t(i)], 1e-4f);
}

TEST(GoldenDecode, BadIdsAreRequestErrors) {
  Model m = Model::load(golden("qwen2_tiny"));
  KvCache cache = m.make_cache(4);
  std::vector<float> out(static_cast<size_t>(4 * m.config().vocab_size));
  const std::vector<int32_t> bad = {1, int32_t(m.config().vocab_size)};
  try {
    m.forward(bad, cache, out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
  }
}

}  // namespace

// The serving kernels (int8 activations on Q8_0 / Q4_0 weights, bf16 activations on bf16 and
// FP8 weights where the CPU has AVX-512 BF16; one decode step per token, as generation runs)
// stay within 0.1 of the reference logits (the inference kernels issue's bound; observed
// 0.05-0.09 on logits up to 4). The exact path is checked above to 3e-5.
TEST(GoldenFast, DecodeStaysWithinATenthOfTheReference) {
  struct Case {
    const char* name;
    const char* file;
    bool rounded;  // whether a serving kernel rounds this model's activations on this CPU
  };
  const bool bf16 = kernels::bf16_dot4_kernel() != nullptr;
  for (const Case& c :
       {Case{"qwen2_gguf", "/model.gguf", true}, Case{"deepseek2_gguf", "/model.gguf", true},
        Case{"deepseek3_gguf", "/model.gguf", true}, Case{"llama3_gguf", "/model.gguf", true},
        Case{"qwen2_tiny", "", bf16}, Case{"v3_fp8", "", bf16}}) {
    const char* name = c.name;
    SCOPED_TRACE(name);
    const std::string dir = golden(name);
    const auto ids = read_case(dir).at("ids").get<std::vector<int32_t>>();
    const Model m = Model::load(dir + c.file);
    const int64_t T = int64_t(ids.size()), V = m.config().vocab_size;
    const Tensor want = formats::read_npy(dir + "/logits.npy");
    std::vector<float> got(size_t(T * V));
    KvCache cache = m.make_cache(T);
    const kernels::ScopedServingKernels serving(true);
    for (int64_t t = 0; t < T; ++t)
      m.forward(std::span(ids).subspan(size_t(t), 1), cache,
                std::span(got).subspan(size_t(t * V), size_t(V)));
    float worst = 0;
    for (int64_t i = 0; i < T * V; ++i)
      worst = std::max(worst, std::fabs(got[size_t(i)] - want.data_as<float>()[i]));
    EXPECT_LE(worst, 0.1f);
    if (c.rounded) {
      EXPECT_GT(worst, 1e-4f) << "the serving kernels must actually have run";
    }
  }
}

// The same bound for a whole prompt in one forward, as prefill runs it: the packed int8 GEMM on
// Q8_0 / Q4_0 and, on AMX CPUs, BF16 tiles for the other tensors from 16 rows. Then the prompt
// cycled to 48 rows (where the context allows), so Q8_0 / Q4_0 take the tiles too: the serving
// kernels against the exact path of the same model. There a row may differ by more when the
// rounded activations flip a near-tie in MoE routing (deepseek3_gguf's row 20 moves 0.8 with
// the int8 GEMM and with AMX alike, its neighbours stay under 0.09): at most one row in 16 may
// exceed 0.1, none 1.0.
TEST(GoldenFast, PrefillStaysWithinATenthOfTheReference) {
  for (const char* name : {"qwen2_gguf", "deepseek2_gguf", "deepseek3_gguf", "llama3_gguf"}) {
    SCOPED_TRACE(name);
    const std::string dir = golden(name);
    const auto ids = read_case(dir).at("ids").get<std::vector<int32_t>>();
    const Model m = Model::load(dir + "/model.gguf");
    const int64_t T = int64_t(ids.size()), V = m.config().vocab_size;
    const Tensor want = formats::read_npy(dir + "/logits.npy");
    std::vector<float> got(size_t(T * V));
    {
      KvCache cache = m.make_cache(T);
      const kernels::ScopedServingKernels fast(true);
      m.forward(ids, cache, got);
    }
    float worst = 0;
    for (int64_t i = 0; i < T * V; ++i)
      worst = std::max(worst, std::fabs(got[size_t(i)] - want.data_as<float>()[i]));
    EXPECT_LE(worst, 0.1f);

    const int64_t L = std::min<int64_t>(48, m.config().max_position_embeddings);
    if (L < 32) continue;
    std::vector<int32_t> longer(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) longer[size_t(i)] = ids[size_t(i % T)];
    std::vector<float> exact(size_t(L * V)), served(size_t(L * V));
    {
      KvCache cache = m.make_cache(L);
      m.forward(longer, cache, exact);
    }
    {
      KvCache cache = m.make_cache(L);
      const kernels::ScopedServingKernels fast(true);
      m.forward(longer, cache, served);
    }
    worst = 0;
    int64_t rows_over = 0;
    for (int64_t r = 0; r < L; ++r) {
      float row_worst = 0;
      for (int64_t v = 0; v < V; ++v)
        row_worst =
            std::max(row_worst, std::fabs(served[size_t(r * V + v)] - exact[size_t(r * V + v)]));
      rows_over += row_worst > 0.1f;
      worst = std::max(worst, row_worst);
    }
    EXPECT_LE(rows_over, L / 16) << L << " rows";
    EXPECT_LE(worst, 1.0f) << L << " rows";
    EXPECT_GT(worst, 1e-5f) << "the serving kernels must actually have run";
  }
}
