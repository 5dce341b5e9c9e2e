// The engine loop on the reference fixtures: continuously batched generation (prompts of
// different lengths joining while others decode, prefill chunks sharing steps with decodes)
// gives each request exactly what infer::generate gives it alone; seeded sampling does not
// depend on what else runs; cancelling frees the cache; a full queue answers 429 and an
// overlong prompt 400; a repeated prompt is served from the prefix cache.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "infer/generate.h"
#include "infer/speculative.h"
#include "infer/token_constraint.h"
#include "serve/api_error.h"
#include "serve/engine.h"

using namespace tern;
using namespace std::chrono_literals;

namespace {

std::string golden(const char* name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}

std::vector<int32_t> case_ids(const char* name, size_t n) {
  std::ifstream in(golden(name) + "/case.json");
  auto ids = nlohmann::json::parse(in).at("ids").get<std::vector<int32_t>>();
  ids.resize(std::min(n, ids.size()));
  return ids;
}

// A model, a pool with room for `parallel` contexts of `ctx`, a state of `rows`, an engine.
struct Rig {
  Rig(const char* name, int64_t parallel, int64_t rows, int64_t max_queue = 64, int64_t ctx = 64)
      : m(model::Model::load(golden(name))),
        pool(m.config(), parallel * (ctx / 4), 4, DType::f32),
        st(m.config(), pool.store().layout, {rows, 0, model::MlaMode::absorbed}),
        engine(m, pool, st, {parallel, max_queue, ctx}) {}
  model::Model m;
  infer::KvPool pool;
  model::ForwardState st;
  serve::Engine engine;
};

serve::GenerationRequest request(std::vector<int32_t> prompt, int64_t n, float temperature = 0,
                                 uint64_t seed = 0) {
  serve::GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = n;
  r.sampling.temperature = temperature;
  r.sampling.seed = seed;
  r.stream = 7;
  return r;
}

std::vector<int32_t> drain(serve::Generation& g, serve::GenerationResult* result = nullptr) {
  std::vector<serve::TokenEvent> events;
  std::optional<serve::GenerationResult> r;
  while (!(r = g.wait(events, 1000ms))) {
  }
  if (result) *result = *r;
  std::vector<int32_t> ids;
  for (const auto& e : events) ids.push_back(e.token);
  return ids;
}

// What infer::generate gives the same request alone, on its own pool.
std::vector<int32_t> alone(const model::Model& m, const serve::GenerationRequest& r) {
  infer::KvPool pool(m.config(), 32, 4, DType::f32);
  model::ForwardState st(m.config(), pool.store().layout, {4, 0, model::MlaMode::absorbed});
  infer::Sampler sampler(r.sampling, int32_t(m.config().vocab_size), r.stream);
  std::vector<int32_t> out;
  infer::generate(m, pool, st, sampler, {r.prompt, r.max_tokens, {}, 64}, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  return out;
}

}  // namespace

TEST(Engine, ContinuousBatchingGivesEachRequestWhatItGetsAlone) {
  for (const char* name : {"v3_tiny", "qwen2_tiny"}) {
    // 3 slots for 5 requests: two wait and join later; 5 rows per step so prompt chunks and
    // decodes share steps.
    Rig rig(name, 3, 5);
    const std::vector<size_t> lengths = {3, 11, 6, 9, 1};
    std::vector<serve::GenerationRequest> reqs;
    for (size_t i = 0; i < lengths.size(); ++i) {
      // Sampled at temperature 1 with a fixed seed, so every logit matters, not only the argmax.
      reqs.push_back(
          request(case_ids(name, lengths[i]), 6 + int64_t(i), i % 2 ? 1.0f : 0.0f, 100 + i));
    }
    std::vector<std::shared_ptr<serve::Generation>> gens;
    for (const auto& r : reqs) gens.push_back(rig.engine.submit(r));
    for (size_t i = 0; i < reqs.size(); ++i) {
      serve::GenerationResult res;
      const std::vector<int32_t> got = drain(*gens[i], &res);
      EXPECT_EQ(got, alone(rig.m, reqs[i])) << name << " request " << i;
      EXPECT_EQ(res.reason, serve::FinishReason::length);
      EXPECT_EQ(res.generated, int64_t(got.size()));
      EXPECT_EQ(res.prompt_tokens, int64_t(lengths[i]));
    }
    const serve::BackendStats st = rig.engine.stats();
    EXPECT_GT(st.steps, 0);
    if (st.experts > 0) {  // every row of every step chose K experts in each MoE layer
      int64_t first_layer = 0;
      for (int64_t x = 0; x < st.experts; ++x) first_layer += st.expert_tokens[size_t(x)];
      EXPECT_EQ(first_layer, st.batch_rows * rig.m.config().num_experts_per_tok) << name;
    }
  }
}

// A model with its MTP module, the main pool, the module's one-layer pool, and an engine that
// drafts.
struct MtpRig {
  MtpRig(int64_t parallel, int64_t rows, int64_t ctx = 64)
      : m(model::Model::load(golden("v3_tiny"), {/*include_mtp=*/true})),
        pool(m.config(), parallel * (ctx / 4), 4, DType::f32),
        mtp_pool(m.config(), parallel * (ctx / 4), 4, DType::f32, 1),
        st(m.config(), pool.store().layout, {rows, 0, model::MlaMode::absorbed}),
        engine(m, pool, st, {parallel, 64, ctx, &mtp_pool}) {}
  model::Model m;
  infer::KvPool pool, mtp_pool;
  model::ForwardState st;
  serve::Engine engine;
};

// What infer::generate_mtp gives the same request alone.
std::vector<int32_t> alone_mtp(const model::Model& m, const serve::GenerationRequest& r,
                               int64_t ctx) {
  infer::KvPool pool(m.config(), 32, 4, DType::f32);
  infer::KvPool mtp_pool(m.config(), 32, 4, DType::f32, 1);
  model::ForwardState st(m.config(), pool.store().layout, {4, 0, model::MlaMode::absorbed});
  infer::Sampler sampler(r.sampling, int32_t(m.config().vocab_size), r.stream);
  std::vector<int32_t> out;
  infer::generate_mtp(m, pool, mtp_pool, st, sampler, {r.prompt, r.max_tokens, {}, ctx},
                      [&](int32_t t) {
                        out.push_back(t);
                        return true;
                      });
  return out;
}

TEST(Engine, MtpDraftingGivesEachRequestWhatGenerateMtpGivesItAlone) {
  // Greedy and sampled requests of different lengths drafting together, with prompt chunks in
  // the same steps; one runs into the end of the context (no room for a draft there). The
  // prompts are prefixes of one another, so some may reuse cached blocks and not draft.
  MtpRig rig(3, 8);
  const std::vector<size_t> lengths = {3, 11, 6, 9, 1};
  std::vector<serve::GenerationRequest> reqs;
  for (size_t i = 0; i < lengths.size(); ++i)
    reqs.push_back(request(case_ids("v3_tiny", lengths[i]), i == 3 ? 60 : 10 + int64_t(i),
                           i % 2 ? 1.0f : 0.0f, 200 + i));
  std::vector<std::shared_ptr<serve::Generation>> gens;
  for (const auto& r : reqs) gens.push_back(rig.engine.submit(r));
  for (size_t i = 0; i < reqs.size(); ++i) {
    serve::GenerationResult res;
    const std::vector<int32_t> got = drain(*gens[i], &res);
    // A prompt that found cached blocks (these prompts share prefixes) decodes without drafts.
    EXPECT_EQ(got, res.cached_tokens > 0 ? alone(rig.m, reqs[i]) : alone_mtp(rig.m, reqs[i], 64))
        << "request " << i << " (" << res.cached_tokens << " cached)";
    EXPECT_EQ(res.reason, serve::FinishReason::length);
  }
  const serve::BackendStats st = rig.engine.stats();
  EXPECT_TRUE(st.mtp);
  EXPECT_GT(st.mtp_drafted, 0);
  EXPECT_LE(st.mtp_accepted, st.mtp_drafted);
  // Greedy drafting changes nothing: the same as plain decoding.
  EXPECT_EQ(alone_mtp(rig.m, reqs[0], 64), alone(rig.m, reqs[0]));
}

// A constraint that fails on its third token, as a broken grammar would.
struct FailingConstraint final : infer::TokenConstraint {
  explicit FailingConstraint(int32_t vocab) : vocab(vocab) {}
  void allowed(std::vector<uint8_t>& a) override { a.assign(size_t(vocab), 1); }
  void accept(int32_t) override {
    if (++seen == 3) fail(ErrorKind::internal, "constraint broke");
  }
  bool finished() const override { return false; }
  int32_t vocab, seen = 0;
};

TEST(Engine, ASequenceThatFailsEndsAloneAndTheLoopGoesOn) {
  Rig rig("v3_tiny", 2, 8);
  auto bad = request(case_ids("v3_tiny", 5), 20);
  bad.constraint = std::make_shared<FailingConstraint>(rig.engine.vocab_size());
  const auto good = request(case_ids("v3_tiny", 7), 10);
  auto gb = rig.engine.submit(bad);
  auto gg = rig.engine.submit(good);
  serve::GenerationResult rb, rg;
  const auto tokens_bad = drain(*gb, &rb);
  EXPECT_EQ(rb.reason, serve::FinishReason::error);
  EXPECT_NE(rb.error.find("constraint broke"), std::string::npos) << rb.error;
  EXPECT_EQ(tokens_bad.size(), 2u);
  EXPECT_EQ(drain(*gg, &rg), alone(rig.m, good)) << "the other sequence is untouched";
  EXPECT_EQ(rg.reason, serve::FinishReason::length);
  // And the loop still serves.
  EXPECT_EQ(drain(*rig.engine.submit(good)), alone(rig.m, good));
}

TEST(Engine, RepeatedPromptComesFromThePrefixCache) {
  Rig rig("v3_tiny", 2, 8);
  const auto r = request(case_ids("v3_tiny", 11), 3);
  serve::GenerationResult first, second;
  const auto a = drain(*rig.engine.submit(r), &first);
  const auto b = drain(*rig.engine.submit(r), &second);
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_EQ(second.cached_tokens, 8) << "two full blocks of 4 before the last prompt token";
  EXPECT_EQ(a, b);
}

// Takes 2 ms per draw, so 400 tokens last most of a second: long enough to be cancelled
// mid-way on a loaded machine.
struct SlowConstraint final : infer::TokenConstraint {
  explicit SlowConstraint(int32_t vocab) : vocab(vocab) {}
  void allowed(std::vector<uint8_t>& a) override {
    std::this_thread::sleep_for(2ms);
    a.assign(size_t(vocab), 1);
  }
  void accept(int32_t) override {}
  bool finished() const override { return false; }
  int32_t vocab;
};

TEST(Engine, CancellingEndsTheGenerationAndFreesItsBlocks) {
  // One slot: `a` runs (up to 400 tokens) while `b` waits, so cancelling `b` is seen before it
  // ever runs; `a` is cancelled mid-generation.
  Rig rig("v3_tiny", 1, 8, 4, /*ctx=*/512);
  auto slow = request(case_ids("v3_tiny", 5), 400);
  slow.constraint = std::make_shared<SlowConstraint>(rig.engine.vocab_size());
  auto a = rig.engine.submit(slow);
  auto b = rig.engine.submit(request(case_ids("v3_tiny", 5), 400));
  b->cancel();
  std::vector<serve::TokenEvent> events;
  while (events.empty()) a->wait(events, 1000ms);
  a->cancel();
  serve::GenerationResult ra, rb;
  drain(*a, &ra);
  drain(*b, &rb);
  EXPECT_EQ(rb.reason, serve::FinishReason::cancelled);
  EXPECT_EQ(rb.generated, 0);
  EXPECT_LT(ra.generated, 400) << "cancelled before the end (unless the machine stalled 400 steps)";
  // Stats are published by the loop after each step: wait for both to settle.
  for (int i = 0; i < 200; ++i) {
    const auto st = rig.engine.stats();
    if (st.kv_blocks_used == 0 && st.active == 0) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(rig.engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(rig.engine.stats().active, 0);
}

// Holds the engine inside a's first draw until released, so a cannot finish before the test is
// done counting (a slow CI machine once let a 400-token request end in between).
struct HoldingConstraint final : infer::TokenConstraint {
  explicit HoldingConstraint(int32_t vocab) : vocab(vocab) {}
  void allowed(std::vector<uint8_t>& a) override {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return released; });
    a.assign(size_t(vocab), 1);
  }
  void accept(int32_t) override {}
  bool finished() const override { return false; }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  }
  int32_t vocab;
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
};

TEST(Engine, FullQueueAnswers429AndOverlongPrompt400) {
  Rig rig("v3_tiny", 1, 4, /*max_queue=*/1, /*ctx=*/512);
  auto hold = std::make_shared<HoldingConstraint>(rig.engine.vocab_size());
  auto held = request(case_ids("v3_tiny", 3), 400);
  held.constraint = hold;
  auto a = rig.engine.submit(held);
  auto b = rig.engine.submit(request(case_ids("v3_tiny", 3), 400));
  try {
    rig.engine.submit(request(case_ids("v3_tiny", 3), 400));
    FAIL() << "a third request fits neither the slot nor the queue";
  } catch (const serve::ApiError& e) {
    EXPECT_EQ(e.status(), 429);
  }
  a->cancel();
  b->cancel();
  hold->release();
  try {
    rig.engine.submit(request(std::vector<int32_t>(512, 1), 4));
    FAIL() << "512 prompt tokens leave no room in a 512-position context";
  } catch (const serve::ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  }
}

TEST(Engine, GenerationStopsAtTheContextEnd) {
  Rig rig("qwen2_tiny", 1, 8, 4, /*ctx=*/16);
  serve::GenerationResult res;
  const auto got = drain(*rig.engine.submit(request(case_ids("qwen2_tiny", 10), 100)), &res);
  EXPECT_EQ(res.reason, serve::FinishReason::length);
  EXPECT_EQ(got.size(), 7u) << "positions 10..15 hold generated tokens; the 7th needs none";
}

TEST(Engine, TokenLogprobsAreALogSoftmax) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  const serve::TokenEvent e = serve::token_logprobs(logits, 2, 3);
  double z = 0;
  for (float v : logits) z += std::exp(double(v));
  EXPECT_NEAR(e.logprob, 2.0 - std::log(z), 1e-6);
  ASSERT_EQ(e.top.size(), 3u);
  EXPECT_EQ(e.top[0].token, 1);  // ties: the lower id first
  EXPECT_EQ(e.top[1].token, 3);
  EXPECT_EQ(e.top[2].token, 2);
}

TEST(Engine, AStopIdEndsTheGenerationAndIsReportedNotEmitted) {
  Rig rig("v3_tiny", 1, 4);
  serve::GenerationRequest r = request(case_ids("v3_tiny", 5), 8);
  const std::vector<int32_t> free_run = alone(rig.m, r);
  ASSERT_GE(free_run.size(), 3u);
  // The third greedy token stops it, wherever it first appears; a decoy stop id never drawn
  // sits in front, so the reported one is the token drawn, not the list's first.
  const int32_t stop = free_run[2];
  const size_t first = size_t(std::find(free_run.begin(), free_run.end(), stop) - free_run.begin());
  int32_t decoy = 0;
  while (std::find(free_run.begin(), free_run.end(), decoy) != free_run.end()) ++decoy;
  r.stop_ids = {decoy, stop};
  serve::GenerationResult res;
  const std::vector<int32_t> got = drain(*rig.engine.submit(r), &res);
  EXPECT_EQ(res.reason, serve::FinishReason::stop);
  EXPECT_EQ(res.stop_token, stop);
  EXPECT_EQ(got, std::vector<int32_t>(free_run.begin(), free_run.begin() + long(first)));

  r.stop_ids = {decoy};
  const std::vector<int32_t> all = drain(*rig.engine.submit(r), &res);
  EXPECT_EQ(res.reason, serve::FinishReason::length);
  EXPECT_EQ(res.stop_token, -1);
  EXPECT_EQ(all, free_run);
}
