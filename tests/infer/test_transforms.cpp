// Each sampling transform alone, on hand-worked rows and against the full-sort reference:
// candidate building and its NaN / -inf checks, greedy ties, bias, top-k, temperature,
// softmax, top-p (including the chunked partial sort on a 129,280-token row), min-p, draw.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "infer/transforms.h"
#include "reference.h"

using namespace tern::infer;
using tern::Error;
using tern::ErrorKind;

namespace {

Candidates make(const std::vector<float>& row) {
  Candidates c;
  build_candidates(row, c);
  return c;
}

std::vector<int32_t> ids_of(const Candidates& c) {
  std::vector<int32_t> ids;
  for (const Candidate& x : c.items) ids.push_back(x.id);
  return ids;
}

// Throws-with-message check: the error kind and a fragment the message must contain.
template <typename F>
void expect_error(F&& f, ErrorKind kind, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << fragment;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// A reproducible row of n logits, N(0, scale^2), from the project's RNG.
std::vector<float> random_row(size_t n, uint64_t seed, double scale) {
  std::vector<float> row(n);
  tern::rng::fill_normal(seed, tern::rng::stream_id("test/logits"), 0, row.data(), n, 0.0, scale);
  return row;
}

}  // namespace

TEST(Candidates, SkipMinusInfAndKeepIdOrder) {
  const Candidates c = make({1.0f, -INFINITY, 0.5f, -2.0f});
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(c.sorted, 0u);
}

TEST(Candidates, RefuseNaNByPositionInfAndAllMasked) {
  expect_error([] { make({0.0f, 1.0f, NAN}); }, ErrorKind::internal, "logits[2] is NaN");
  expect_error([] { make({INFINITY, 1.0f}); }, ErrorKind::internal, "logits[0] is +inf");
  expect_error([] { make({-INFINITY, -INFINITY}); }, ErrorKind::request, "every logit is -inf");
}

TEST(Greedy, ArgmaxWithLowestIdOnTies) {
  EXPECT_EQ(greedy(std::vector<float>{0.1f, 3.0f, -1.0f, 2.9f}), 1);
  EXPECT_EQ(greedy(std::vector<float>{1.0f, 5.0f, 2.0f, 5.0f, 5.0f}), 1);
  EXPECT_EQ(greedy(std::vector<float>{-INFINITY, -INFINITY, -7.0f}), 2);
  EXPECT_EQ(greedy(std::vector<float>{4.0f}), 0);
}

TEST(Greedy, RefusesNaNAndAllMasked) {
  expect_error(
      [] {
        greedy(std::vector<float>{NAN, 1.0f});
      },
      ErrorKind::internal, "logits[0] is NaN");
  expect_error(
      [] {
        greedy(std::vector<float>{1.0f, 2.0f, NAN});
      },
      ErrorKind::internal, "logits[2] is NaN");
  expect_error([] { greedy(std::vector<float>{-INFINITY}); }, ErrorKind::request,
               "every logit is -inf");
}

TEST(Greedy, MatchesReferenceOnRandomRows) {
  SamplingParams greedy_params;
  greedy_params.temperature = 0.0f;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<float> row = random_row(1000, seed, 1.0);
    // Coarse rounding makes ties common, which is what the lowest-id rule is about.
    for (float& x : row) x = std::round(x * 4.0f) / 4.0f;
    const auto ref = test::reference_probabilities(row, greedy_params);
    const auto best = std::max_element(ref.begin(), ref.end()) - ref.begin();
    EXPECT_EQ(greedy(row), best);
  }
}

TEST(LogitBias, AddsAndChecksIds) {
  std::vector<float> row = {1.0f, 2.0f, 3.0f};
  apply_logit_bias(row, {{0, 5.0f}, {2, -100.0f}});
  EXPECT_EQ(row, (std::vector<float>{6.0f, 2.0f, -97.0f}));
  expect_error([&] { apply_logit_bias(row, {{3, 1.0f}}); }, ErrorKind::request, "'logit_bias'");
}

TEST(TopK, KeepsBestInCanonicalOrder) {
  Candidates c = make({1.0f, 3.0f, 2.0f, 3.0f, 0.0f});
  top_k(c, 2);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{1, 3}));  // tie at 3.0: lower id first
  Candidates tie = make({1.0f, 2.0f, 2.0f, 2.0f});
  top_k(tie, 2);
  EXPECT_EQ(ids_of(tie), (std::vector<int32_t>{1, 2}));  // tie at the cut: lower ids kept
}

TEST(TopK, ZeroOrLargerThanVocabIsNoOp) {
  for (int32_t k : {0, 5, 6, 1000}) {
    Candidates c = make({1.0f, 3.0f, 2.0f, 3.0f, 0.0f});
    top_k(c, k);
    EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0, 1, 2, 3, 4})) << "k=" << k;
  }
}

TEST(Temperature, ScalesAfterSubtractingMax) {
  Candidates c = make({1.0f, 2.0f, 3.0f});
  apply_temperature(c, 0.5f);
  EXPECT_EQ(c.items[0].logit, -4.0f);
  EXPECT_EQ(c.items[1].logit, -2.0f);
  EXPECT_EQ(c.items[2].logit, 0.0f);
}

TEST(Temperature, TinyTemperatureDoesNotOverflow) {
  Candidates c = make({30.0f, 31.0f, 30.999f});
  apply_temperature(c, 1e-30f);
  softmax(c);
  EXPECT_EQ(c.items[1].weight, 1.0f);
  EXPECT_EQ(c.items[0].weight, 0.0f);
  EXPECT_EQ(c.items[2].weight, 0.0f);
  EXPECT_EQ(c.total, 1.0);
  EXPECT_EQ(draw(c, 0.999), 1);
}

TEST(Softmax, MatchesHandWorkedWeights) {
  // logits ln1, ln2, ln4: p = 1/7, 2/7, 4/7. Float exp of a float log is within a few ulp.
  Candidates c = make({0.0f, std::log(2.0f), std::log(4.0f)});
  softmax(c);
  const double expect[] = {1.0 / 7, 2.0 / 7, 4.0 / 7};
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(c.items[i].weight / c.total, expect[i], 1e-6);
}

TEST(TopP, KeepsShortestPrefixReachingP) {
  // p = 0.5, 0.25, 0.125, 0.125 (ids 2, 0, 3, 1)
  const std::vector<float> row = {std::log(0.25f), std::log(0.125f), std::log(0.5f),
                                  std::log(0.125f)};
  const struct {
    float p;
    std::vector<int32_t> ids;
  } cases[] = {{0.01f, {2}}, {0.7f, {2, 0}}, {0.8f, {2, 0, 1}}, {1.0f, {0, 1, 2, 3}}};
  for (const auto& k : cases) {
    Candidates c = make(row);
    softmax(c);
    top_p(c, k.p);
    EXPECT_EQ(ids_of(c), k.ids) << "top_p=" << k.p;  // tie 1/3 at 0.125: lower id first
    double sum = 0;
    for (const Candidate& x : c.items) sum += x.weight;
    EXPECT_EQ(c.total, sum) << "renormalised";
  }
}

TEST(TopP, FullVocabularyMatchesFullSortReference) {
  // A 129,280-token row (DeepSeek-V3's vocabulary). p is set halfway between two reference
  // cumulative sums, so float vs double rounding cannot move the cut: the sets must agree.
  const std::vector<float> row = random_row(129280, 7, 3.0);
  SamplingParams sp;
  std::vector<double> ref = test::reference_probabilities(row, sp);
  std::vector<double> sorted_p = ref;
  std::sort(sorted_p.begin(), sorted_p.end(), std::greater<>());
  for (size_t keep : {1u, 3u, 50u, 400u, 5000u}) {
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) cum += sorted_p[i];
    sp.top_p = float(cum - sorted_p[keep - 1] / 2);  // inside the keep-th token's mass
    ref = test::reference_probabilities(row, sp);
    Candidates c = make(row);
    softmax(c);
    top_p(c, sp.top_p);
    ASSERT_EQ(c.items.size(), keep);
    for (const Candidate& x : c.items)
      EXPECT_NEAR(x.weight / c.total, ref[size_t(x.id)], 1e-6 + 1e-5 * ref[size_t(x.id)]);
  }
}

TEST(MinP, KeepsTokensNearTheBest) {
  const std::vector<float> row = {std::log(0.25f), std::log(0.125f), std::log(0.5f),
                                  std::log(0.125f)};
  Candidates c = make(row);
  softmax(c);
  min_p(c, 0.3f);  // threshold 0.15 of p_max=0.5 in probability terms: keeps 0.5 and 0.25
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0, 2}));  // a stable filter: id order survives
  EXPECT_NEAR(c.items[1].weight / c.total, 2.0 / 3, 1e-6);
  Candidates all = make(row);
  softmax(all);
  min_p(all, 0.2f);
  EXPECT_EQ(all.items.size(), 4u);
  Candidates one = make(row);
  softmax(one);
  min_p(one, 1.0f);
  EXPECT_EQ(ids_of(one), (std::vector<int32_t>{2}));
}

TEST(Draw, InverseCdfInItemOrder) {
  Candidates c = make({0.0f, std::log(2.0f), 0.0f});
  softmax(c);  // weights 1, 2, 1 (up to float rounding of exp(ln 2))
  EXPECT_EQ(draw(c, 0.0), 0);
  EXPECT_EQ(draw(c, 0.24), 0);
  EXPECT_EQ(draw(c, 0.26), 1);
  EXPECT_EQ(draw(c, 0.74), 1);
  EXPECT_EQ(draw(c, 0.76), 2);
  EXPECT_EQ(draw(c, std::nextafter(1.0, 0.0)), 2);
}

TEST(Draw, NeverPicksAZeroWeightToken) {
  Candidates c = make({0.0f, 0.0f, 0.0f});
  softmax(c);
  c.items[2].weight = 0.0f;  // as if underflowed
  renormalise(c);
  EXPECT_EQ(draw(c, std::nextafter(1.0, 0.0)), 1);
}

namespace {

// The reference's canonical order: logit descending, lower id first on ties.
std::vector<int32_t> canonical_ids(const std::vector<float>& row) {
  std::vector<int32_t> ids(row.size());
  for (size_t i = 0; i < row.size(); ++i) ids[i] = int32_t(i);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return row[size_t(a)] > row[size_t(b)] || (row[size_t(a)] == row[size_t(b)] && a < b);
  });
  return ids;
}

}  // namespace

TEST(TopK, HeapAndSelectionPathsMatchFullSortWithTies) {
  // Rounded logits make long runs of ties, so the lowest-id rule decides the cut.
  std::vector<float> row = random_row(129280, 5, 3.0);
  for (float& x : row) x = std::round(x * 8.0f) / 8.0f;
  const std::vector<int32_t> order = canonical_ids(row);
  // 1 and 40 take the heap path (k <= n/16), the others nth_element.
  for (int32_t k : {1, 40, 1000, 8080, 20000, 129279}) {
    Candidates c = make(row);
    top_k(c, k);
    EXPECT_EQ(ids_of(c), std::vector<int32_t>(order.begin(), order.begin() + k)) << "k=" << k;
  }
}

TEST(TopP, BucketPreselectionKeepsCanonicalPrefixWithTies) {
  std::vector<float> row = random_row(129280, 9, 2.0);
  for (float& x : row) x = std::round(x * 4.0f) / 4.0f;
  const std::vector<int32_t> order = canonical_ids(row);
  Candidates full = make(row);
  softmax(full);
  // Cut inside token `keep`'s mass (by the reference's double sums): the kept ids must be
  // exactly the canonical prefix, ties at the boundary resolved to lower ids.
  for (size_t keep : {1u, 2u, 100u, 3000u, 60000u}) {
    double cum = 0, total = 0;
    for (float x : row) total += std::exp(double(x) - row[size_t(order[0])]);
    double last = 0;
    for (size_t i = 0; i < keep; ++i) {
      last = std::exp(double(row[size_t(order[i])]) - row[size_t(order[0])]) / total;
      cum += last;
    }
    Candidates c = full;
    top_p(c, float(cum - last / 2));
    EXPECT_EQ(ids_of(c), std::vector<int32_t>(order.begin(), order.begin() + long(keep)))
        << "keep=" << keep;
  }
}

TEST(TopP, TinyTemperatureOnFullVocabulary) {
  // After a tiny temperature most logits are -inf: the buckets must still work.
  Candidates c = make(random_row(129280, 13, 3.0));
  apply_temperature(c, 1e-30f);
  softmax(c);
  top_p(c, 0.5f);
  ASSERT_EQ(c.items.size(), 1u);
  EXPECT_EQ(c.items[0].weight, 1.0f);
}
