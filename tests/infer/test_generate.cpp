// The generation loop on the reference fixtures: greedy tokens equal the argmax chain of a full
// recompute (every step rerunning the whole sequence through a fresh cache), prefix reuse
// changes nothing, and each stop condition ends the loop with its reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "fixtures.h"
#include "infer/generate.h"

using namespace tern;
using namespace tern::infer;
using tern::test::case_ids;
using tern::test::golden;

namespace {

// Greedy continuation by full recompute, with the argmax margin of each step.
std::vector<int32_t> recompute_greedy(const model::Model& m, std::vector<int32_t> seq, int n,
                                      std::vector<float>& margins) {
  const int64_t V = m.config().vocab_size;
  std::vector<int32_t> out;
  for (int k = 0; k < n; ++k) {
    std::vector<float> logits(seq.size() * size_t(V));
    model::KvCache cache = m.make_cache(int64_t(seq.size()));
    m.forward(seq, cache, logits);
    const float* last = logits.data() + (seq.size() - 1) * size_t(V);
    const int32_t best = int32_t(std::max_element(last, last + V) - last);
    float second = -1e30f;
    for (int64_t v = 0; v < V; ++v)
      if (v != best) second = std::max(second, last[v]);
    margins.push_back(last[best] - second);
    out.push_back(best);
    seq.push_back(best);
  }
  return out;
}

std::vector<int32_t> generate_greedy(const model::Model& m, KvPool& pool,
                                     const std::vector<int32_t>& prompt, int n, int64_t chunk,
                                     GenerateStats* stats = nullptr) {
  model::ForwardState st(m.config(), pool.store().layout, {chunk, 0, model::MlaMode::absorbed});
  SamplingParams p;
  p.temperature = 0;
  Sampler sampler(p, int32_t(m.config().vocab_size), 1);
  std::vector<int32_t> out;
  const GenerateStats s = generate(m, pool, st, sampler, {prompt, n, {}, 0}, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  if (stats) *stats = s;
  return out;
}

}  // namespace

TEST(Generate, GreedyEqualsFullRecomputeArgmaxChain) {
  for (const char* name : {"v3_tiny", "qwen2_tiny", "v2_lite_tiny"}) {
    const model::Model m = model::Model::load(golden(name));
    const std::vector<int32_t> prompt = case_ids(name, 7);
    std::vector<float> margins;
    const std::vector<int32_t> want = recompute_greedy(m, prompt, 8, margins);
    KvPool pool(m.config(), 8, 4, DType::f32);
    const std::vector<int32_t> got = generate_greedy(m, pool, prompt, 8, 3);
    ASSERT_EQ(got.size(), want.size()) << name;
    // Compare while the reference's top-2 margin exceeds f32 noise (identical inputs up to then).
    for (size_t k = 0; k < got.size() && margins[k] > 1e-4f; ++k)
      EXPECT_EQ(got[k], want[k]) << name << " step " << k;
  }
}

TEST(Generate, PrefixReuseGivesTheSameTokens) {
  const model::Model m = model::Model::load(golden("v3_tiny"));
  const std::vector<int32_t> prompt = case_ids("v3_tiny", 11);
  KvPool pool(m.config(), 16, 4, DType::f32);
  GenerateStats first, second;
  const auto a = generate_greedy(m, pool, prompt, 6, 4, &first);
  const auto b = generate_greedy(m, pool, prompt, 6, 4, &second);
  EXPECT_EQ(first.reused_tokens, 0);
  EXPECT_EQ(second.reused_tokens, 8) << "two full blocks of 4 before the last prompt token";
  EXPECT_EQ(a, b);
}

TEST(Generate, StopsForEachReason) {
  const model::Model m = model::Model::load(golden("qwen2_tiny"));
  const std::vector<int32_t> prompt = case_ids("qwen2_tiny", 5);
  KvPool pool(m.config(), 64, 4, DType::bf16);
  model::ForwardState st(m.config(), pool.store().layout, {8, 0, model::MlaMode::absorbed});
  SamplingParams p;
  p.temperature = 0;
  auto run = [&](GenerateRequest req, int stop_after = -1) {
    Sampler sampler(p, int32_t(m.config().vocab_size), 1);
    int seen = 0;
    return generate(m, pool, st, sampler, req, [&](int32_t) { return ++seen != stop_after; });
  };
  EXPECT_EQ(run({prompt, 0, {}, 0}).generated, 0);
  EXPECT_EQ(run({prompt, 5, {}, 0}).stop, StopReason::max_tokens);
  const GenerateStats by_caller = run({prompt, 5, {}, 0}, 2);
  EXPECT_EQ(by_caller.stop, StopReason::caller);
  EXPECT_EQ(by_caller.generated, 2);
  const int32_t first = generate_greedy(m, pool, prompt, 1, 8).at(0);
  const GenerateStats stopped = run({prompt, 5, {first}, 0});
  EXPECT_EQ(stopped.stop, StopReason::stop_token);
  EXPECT_EQ(stopped.generated, 0) << "a stop token is not emitted";
  const GenerateStats full = run({prompt, 100, {}, 9});
  EXPECT_EQ(full.stop, StopReason::context);
  EXPECT_EQ(full.generated, 9 - 5 + 1) << "the last token needs no cache slot";
  try {
    run({prompt, 5, {}, 5});
    FAIL() << "a prompt filling the context must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
    EXPECT_NE(std::string(e.what()).find("5 tokens but the context holds 5"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(run({{}, 5, {}, 0}), Error);
}
