// The committed reference fixtures as the generation tests use them: a fixture's folder and
// the first ids of its case (a prompt).
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "infer/generate.h"
#include "infer/sampler.h"
#include "model/model.h"

namespace tern::test {

inline std::string golden(const char* name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}

// The fixture's case ids, at most n of them.
inline std::vector<int32_t> case_ids(const char* name,
                                     size_t n = std::numeric_limits<size_t>::max()) {
  std::ifstream in(golden(name) + "/case.json");
  auto ids = nlohmann::json::parse(in).at("ids").get<std::vector<int32_t>>();
  ids.resize(std::min(n, ids.size()));
  return ids;
}

// Pearson's chi-square of observed counts against expected probabilities over `draws` draws.
inline double chi_square(const std::vector<double>& counts, const std::vector<double>& probs,
                         int draws) {
  double chi2 = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const double e = probs[k] * draws;
    chi2 += (counts[k] - e) * (counts[k] - e) / e;
  }
  return chi2;
}

// The exact joint distribution of the first two generated tokens (x, y) under `p`'s sampler:
// p(x) · p(y | x) over every pair with both factors positive (top-k keeps it small).
struct TwoTokenCells {
  std::vector<std::pair<int32_t, int32_t>> cells;
  std::vector<double> probs;
};

inline TwoTokenCells two_token_distribution(const model::Model& m,
                                            const std::vector<int32_t>& prompt,
                                            const infer::SamplingParams& p) {
  const int64_t V = m.config().vocab_size;
  // The sampler's distribution after the prompt and the generated tokens so far (penalties see
  // both).
  auto probs = [&](const std::vector<int32_t>& seq) {
    std::vector<float> logits(seq.size() * size_t(V));
    model::KvCache cache = m.make_cache(int64_t(seq.size()));
    m.forward(seq, cache, logits);
    infer::Sampler probe(p, int32_t(V), 1);
    probe.accept_prompt(prompt);
    for (size_t i = prompt.size(); i < seq.size(); ++i) probe.accept(seq[i]);
    return probe.probabilities(std::span(logits).last(size_t(V)));
  };
  TwoTokenCells d;
  const std::vector<float> px = probs(prompt);
  for (int32_t x = 0; x < V; ++x) {
    if (px[size_t(x)] <= 0) continue;
    std::vector<int32_t> seq = prompt;
    seq.push_back(x);
    const std::vector<float> py = probs(seq);
    for (int32_t y = 0; y < V; ++y)
      if (py[size_t(y)] > 0) {
        d.cells.push_back({x, y});
        d.probs.push_back(double(px[size_t(x)]) * double(py[size_t(y)]));
      }
  }
  return d;
}

// Seeds 0..draws-1 of a two-token generation (`run` returns the tokens and fills the stats),
// tallied against d: Pearson's chi-square, and the drafted / accepted totals.
struct ChiSquareRun {
  double chi2 = 0;
  int64_t drafted = 0, accepted = 0;
};

inline ChiSquareRun two_token_chi_square(
    const TwoTokenCells& d, int draws, infer::SamplingParams p,
    const std::function<std::vector<int32_t>(const infer::SamplingParams&, infer::GenerateStats*)>&
        run) {
  ChiSquareRun out;
  std::vector<double> count(d.cells.size(), 0);
  for (int seed = 0; seed < draws; ++seed) {
    p.seed = uint64_t(seed);
    infer::GenerateStats stats;
    const std::vector<int32_t> t = run(p, &stats);
    out.drafted += stats.drafted;
    out.accepted += stats.accepted;
    for (size_t k = 0; k < d.cells.size(); ++k)
      if (t.size() == 2 && d.cells[k] == std::pair{t[0], t[1]}) count[k] += 1;
  }
  out.chi2 = chi_square(count, d.probs, draws);
  return out;
}

}  // namespace tern::test
