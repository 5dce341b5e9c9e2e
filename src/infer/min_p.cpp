// Min-p cut: drop tokens less likely than min_p times the best one. A stable filter, so the
// canonical order (and any sorted prefix) survives and the draw stays reproducible.
#include <algorithm>

#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

void min_p(Candidates& c, float p) {
  TERN_CHECK(c.weighted);
  if (p <= 0.0f) return;
  float wmax = 0.0f;
  for (const Candidate& x : c.items) wmax = std::max(wmax, x.weight);
  const float threshold = p * wmax;
  const auto end = std::remove_if(c.items.begin(), c.items.end(),
                                  [threshold](const Candidate& x) { return x.weight < threshold; });
  c.items.erase(end, c.items.end());
  c.sorted = std::min(c.sorted, c.items.size());
  renormalise(c);
}

}  // namespace tern::infer
