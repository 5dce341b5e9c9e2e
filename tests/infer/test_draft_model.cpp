// Draft-model speculative decoding: greedy output is plain greedy decoding token for token
// (another model drafting, the model drafting for itself, a draft model with a smaller
// vocabulary, at the context end); sampled output keeps the main model's exact distribution
// (chi-square over the first two tokens under top-k 4, drafted by the same model with
// quantised weights, which mostly agrees and sometimes does not).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "core/error.h"
#include "fixtures.h"
#include "formats/gguf_writer.h"
#include "infer/draft_model.h"
#include "model/gguf_export.h"

using namespace tern;
using namespace tern::infer;
using tern::test::case_ids;
using tern::test::golden;

namespace {

struct DraftRun {
  std::vector<int32_t> tokens;
  GenerateStats stats;
};

// k = 0: plain generation without the drafter.
DraftRun run(const model::Model& m, const model::Model& d, const std::vector<int32_t>& prompt,
             int n, const SamplingParams& p, int64_t k, int64_t ctx = 0) {
  KvPool pool(m.config(), 32, 4, DType::f32), dpool(d.config(), 32, 4, DType::f32);
  model::ForwardState st(m.config(), pool.store().layout, {8, 0, model::MlaMode::absorbed});
  model::ForwardState dst(d.config(), dpool.store().layout, {4, 0, model::MlaMode::absorbed});
  Sampler sampler(p, int32_t(m.config().vocab_size), 5);
  DraftRun r;
  const GenerateRequest req{prompt, n, {}, ctx};
  auto keep = [&](int32_t t) {
    r.tokens.push_back(t);
    return true;
  };
  r.stats = k > 0 ? generate_draft(m, pool, st, sampler, DraftModel{d, dpool, dst}, req, k, keep)
                  : generate(m, pool, st, sampler, req, keep);
  return r;
}

SamplingParams greedy() {
  SamplingParams g;
  g.temperature = 0;
  return g;
}

}  // namespace

TEST(DraftModel, GreedyEqualsPlainGreedy) {
  const model::Model main = model::Model::load(golden("qwen2_tiny"));
  const model::Model other = model::Model::load(golden("llama3_tiny"));
  const std::vector<int32_t> prompt = case_ids("qwen2_tiny", 6);
  const DraftRun plain = run(main, main, prompt, 14, greedy(), 0);
  for (int64_t k : {1, 3, 7}) {
    const DraftRun fast = run(main, other, prompt, 14, greedy(), k);
    EXPECT_EQ(fast.tokens, plain.tokens) << "draft " << k;
    EXPECT_LE(fast.stats.accepted, fast.stats.drafted);
    EXPECT_GT(fast.stats.drafted, 0);
    // The model drafting for itself is always right.
    const DraftRun self = run(main, main, prompt, 14, greedy(), k);
    EXPECT_EQ(self.tokens, plain.tokens) << "self draft " << k;
    EXPECT_EQ(self.stats.accepted, self.stats.drafted);
    EXPECT_GT(self.stats.accepted, 0);
  }
  for (int64_t ctx : {12, 13, 15}) {  // drafts are cut at the context end
    const DraftRun p = run(main, main, prompt, 50, greedy(), 0, ctx);
    const DraftRun f = run(main, other, prompt, 50, greedy(), 4, ctx);
    EXPECT_EQ(f.tokens, p.tokens) << "ctx " << ctx;
    EXPECT_EQ(f.stats.stop, StopReason::context);
  }
  const DraftRun one = run(main, other, {prompt[0]}, 5, greedy(), 3);  // a one-token prompt
  EXPECT_EQ(one.tokens, run(main, main, {prompt[0]}, 5, greedy(), 0).tokens);
}

TEST(DraftModel, SmallerDraftVocabularyAndMlaModels) {
  // v3_tiny (vocab 256, MLA + MoE) drafted by v2_tiny (vocab 160): the drafter can never
  // propose ids >= 160, and the output is still plain greedy.
  const model::Model main = model::Model::load(golden("v3_tiny"));
  const model::Model small = model::Model::load(golden("v2_tiny"));
  std::vector<int32_t> prompt = case_ids("v2_tiny", 6);
  const DraftRun plain = run(main, main, prompt, 10, greedy(), 0);
  const DraftRun fast = run(main, small, prompt, 10, greedy(), 2);
  EXPECT_EQ(fast.tokens, plain.tokens);
  EXPECT_GT(fast.stats.drafted, 0);
  // The other way round the drafter's vocabulary is larger: refused.
  EXPECT_THROW(run(small, main, prompt, 4, greedy(), 2), Error);
}

TEST(DraftModel, SampledOutputKeepsTheMainModelsDistribution) {
  const model::Model m = model::Model::load(golden("qwen2_tiny"));
  // The drafter: the same model written as Q4_0 (tern convert's export), close to p but not p.
  const std::string q4 = (std::filesystem::temp_directory_path() /
                          ("tern_draft_q4_" + std::to_string(::getpid()) + ".gguf"))
                             .string();
  {
    model::GgufExportOptions o;
    o.type = DType::q4_0;
    const model::GgufExport plan = model::plan_gguf_export(m, o);
    formats::write_gguf(q4, plan.metadata, plan.specs,
                        [&](size_t i, const formats::GgufSink& sink) { plan.writers[i](sink); });
  }
  const model::Model d = model::Model::load(q4);
  std::filesystem::remove(q4);
  const std::vector<int32_t> prompt = case_ids("qwen2_tiny");
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 4;
  const tern::test::TwoTokenCells cells = tern::test::two_token_distribution(m, prompt, p);
  ASSERT_EQ(cells.cells.size(), 16u);
  const auto [chi2, drafted, accepted] = tern::test::two_token_chi_square(
      cells, 1200, p, [&](const SamplingParams& sp, GenerateStats* stats) {
        const DraftRun r = run(m, d, prompt, 2, sp, 2);
        *stats = r.stats;
        return r.tokens;
      });
  // 15 degrees of freedom: P(chi2 > 37.7) = 0.001 if the distributions agree.
  EXPECT_LT(chi2, 37.7) << "accepted " << accepted << " of " << drafted << " drafted tokens";
  EXPECT_GT(accepted, 0) << "some drafts must be accepted";
  EXPECT_LT(accepted, drafted) << "and some rejected, so both paths ran";
}

TEST(DraftModel, BadSettingsAreRefused) {
  const model::Model m = model::Model::load(golden("qwen2_tiny"));
  EXPECT_THROW(run(m, m, {1, 2}, 3, greedy(), 8), Error) << "8 drafts need 9 rows; the state has 8";
  KvPool pool(m.config(), 32, 4, DType::f32);
  model::ForwardState st(m.config(), pool.store().layout, {8, 0, model::MlaMode::absorbed});
  model::ForwardState tiny(m.config(), pool.store().layout, {1, 0, model::MlaMode::absorbed});
  Sampler sampler(greedy(), int32_t(m.config().vocab_size), 5);
  const GenerateRequest req{{1, 2}, 3, {}, 0};
  auto keep = [](int32_t) { return true; };
  EXPECT_THROW(generate_draft(m, pool, st, sampler, DraftModel{m, pool, st}, req, 0, keep), Error);
  EXPECT_THROW(generate_draft(m, pool, st, sampler, DraftModel{m, pool, tiny}, req, 2, keep), Error)
      << "the drafter's state needs 2 rows";
}
