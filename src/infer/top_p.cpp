// Nucleus (top-p) cut. On a large unsorted set, a histogram of the mass over logit buckets
// first finds the bucket where the cumulative mass crosses p; only the tokens at or above it
// are sorted. The exact cut is then taken on that canonical prefix, extended in growing chunks
// (nth_element on the tail) if rounding left it short, so the result equals a full sort's.
#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {
namespace {

constexpr size_t kBuckets = 1024;
constexpr size_t kPreselectMin = 4096;  // below this, chunked sorting is already cheap

// Moves the tokens in buckets [0, b*] to the front and sorts them, where bucket b* is the one
// at which the mass summed from the top bucket first reaches target. Buckets are monotone in
// the logit, so every token left behind ranks after every token moved.
void preselect(Candidates& c, double target) {
  float hi = c.items.front().logit, lo = hi;
  for (const Candidate& x : c.items) {
    hi = std::max(hi, x.logit);
    if (x.logit > -INFINITY) lo = std::min(lo, x.logit);
  }
  if (!(hi > lo)) return;
  const float scale = static_cast<float>(kBuckets) / (hi - lo);
  auto bucket = [&](float l) {
    const float d = (hi - l) * scale;  // +inf for l = -inf (weight 0 after a tiny temperature)
    return d < static_cast<float>(kBuckets - 1) ? static_cast<size_t>(d) : kBuckets - 1;
  };
  std::array<double, kBuckets> mass{};
  for (const Candidate& x : c.items) mass[bucket(x.logit)] += x.weight;
  size_t last = 0;
  for (double cum = 0.0; last < kBuckets; ++last) {
    cum += mass[last];
    if (cum >= target) break;
  }
  if (last >= kBuckets - 1) return;  // nearly everything is needed: nothing to save
  const auto mid = std::partition(c.items.begin(), c.items.end(),
                                  [&](const Candidate& x) { return bucket(x.logit) <= last; });
  std::sort(c.items.begin(), mid, ranks_before);
  c.sorted = static_cast<size_t>(mid - c.items.begin());
}

}  // namespace

void top_p(Candidates& c, float p) {
  TERN_CHECK(c.weighted);
  if (p >= 1.0f) return;
  const double target = static_cast<double>(p) * c.total;
  if (c.sorted == 0 && c.items.size() >= kPreselectMin) preselect(c, target);
  double cum = 0.0;
  size_t chunk = 64;
  for (size_t i = 0; i < c.items.size(); ++i) {
    if (i == c.sorted) {
      sort_prefix(c, i + chunk);
      chunk *= 4;
    }
    cum += c.items[i].weight;
    if (cum >= target) {
      c.items.resize(i + 1);
      c.sorted = std::min(c.sorted, c.items.size());
      c.total = cum;  // the same sum, in the same order, that renormalise() would form
      return;
    }
  }
  // Rounding kept the sum just short of the target: everything stays, now in sorted order,
  // so the total is re-formed in the order draw() will walk.
  c.total = cum;
}

}  // namespace tern::infer
