// Building and ordering the candidate set. The row is checked here, in the one pass that
// reads it, so a NaN from the model is reported by position instead of sampled silently.
#include "infer/candidates.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace tern::infer {

void build_candidates(std::span<const float> row, Candidates& out) {
  out.items.clear();
  out.sorted = 0;
  out.weighted = false;
  out.total = 0.0;
  for (size_t i = 0; i < row.size(); ++i) {
    const float l = row[i];
    if (std::isnan(l)) fail(ErrorKind::internal, "logits[" + std::to_string(i) + "] is NaN");
    if (l == -INFINITY) continue;  // masked: probability zero
    if (l == INFINITY)
      fail(ErrorKind::internal, "logits[" + std::to_string(i) +
                                    "] is +inf (model output, or overflow from logit_bias or "
                                    "penalties)");
    out.items.push_back({static_cast<int32_t>(i), l, 0.0f});
  }
  if (out.items.empty())
    fail(ErrorKind::request,
         "no token can be sampled: every logit is -inf (after logit_bias and penalties)");
}

void sort_prefix(Candidates& c, size_t n) {
  auto& v = c.items;
  n = std::min(n, v.size());
  if (n <= c.sorted) return;
  const auto first = v.begin() + static_cast<std::ptrdiff_t>(c.sorted);
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(n);
  // Select the next n - sorted best of the tail in linear time, then order just those.
  if (mid != v.end()) std::nth_element(first, mid, v.end(), ranks_before);
  std::sort(first, mid, ranks_before);
  c.sorted = n;
}

float max_logit(const Candidates& c) {
  if (c.sorted > 0) return c.items.front().logit;
  float m = -INFINITY;
  for (const Candidate& x : c.items) m = std::max(m, x.logit);
  return m;
}

void renormalise(Candidates& c) {
  double t = 0.0;
  for (const Candidate& x : c.items) t += x.weight;
  c.total = t;
}

}  // namespace tern::infer
