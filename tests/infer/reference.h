// Independent reference for the sampling tests, written in the plainest form: a full sort of
// every token and a double-precision softmax, with none of the library's partial sorting.
// Input logits already carry logit_bias and penalties; output is p per token id.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "infer/sampling_params.h"

namespace tern::infer::test {

inline std::vector<double> reference_probabilities(const std::vector<float>& logits,
                                                   const SamplingParams& sp) {
  const size_t n = logits.size();
  std::vector<double> p(n, 0.0);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < n; ++i)
    if (logits[i] != -INFINITY) ids.push_back(static_cast<int32_t>(i));
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] ||
           (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  if (sp.temperature == 0.0f) {
    p[size_t(ids.front())] = 1.0;
    return p;
  }
  if (sp.top_k > 0 && size_t(sp.top_k) < ids.size()) ids.resize(size_t(sp.top_k));
  const double t = sp.temperature, top = logits[size_t(ids.front())];
  std::vector<double> q;
  for (int32_t id : ids) q.push_back(std::exp((double(logits[size_t(id)]) - top) / t));
  auto normalise = [&] {
    const double s = std::accumulate(q.begin(), q.end(), 0.0);
    for (double& x : q) x /= s;
  };
  normalise();
  if (sp.top_p < 1.0f) {
    double cum = 0.0;
    size_t keep = 0;
    while (keep < q.size()) {
      cum += q[keep++];
      if (cum >= double(sp.top_p)) break;
    }
    ids.resize(keep);
    q.resize(keep);
    normalise();
  }
  if (sp.min_p > 0.0f) {
    const double qmax = *std::max_element(q.begin(), q.end());
    std::vector<int32_t> ids2;
    std::vector<double> q2;
    for (size_t i = 0; i < q.size(); ++i)
      if (q[i] >= double(sp.min_p) * qmax) {
        ids2.push_back(ids[i]);
        q2.push_back(q[i]);
      }
    ids = ids2;
    q = q2;
    normalise();
  }
  for (size_t i = 0; i < ids.size(); ++i) p[size_t(ids[i])] = q[i];
  return p;
}

}  // namespace tern::infer::test
