// Nucleus (top-p) cut. The prefix is sorted in growing chunks (nth_element on the unsorted
// tail, then sort the chunk), so a peaked distribution over 129k tokens sorts only a few
// dozen, and a flat one degrades to one full sort at worst.
#include <algorithm>

#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

void top_p(Candidates& c, float p) {
  TERN_CHECK(c.weighted);
  if (p >= 1.0f) return;
  const double target = static_cast<double>(p) * c.total;
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
