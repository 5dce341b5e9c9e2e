// The final draw by inverse CDF over the candidates in item order. Every earlier step leaves
// items either in id order or canonical order, so a given u picks the same token whatever the
// standard library's sort does.
#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

int32_t draw(const Candidates& c, double u) {
  TERN_CHECK(c.weighted && !c.items.empty() && u >= 0.0 && u < 1.0);
  const double target = u * c.total;
  double cum = 0.0;
  for (const Candidate& x : c.items) {
    cum += x.weight;
    if (target < cum) return x.id;
  }
  // u * total rounded up to total: take the last token that has any mass.
  for (auto it = c.items.rbegin(); it != c.items.rend(); ++it)
    if (it->weight > 0.0f) return it->id;
  return c.items.back().id;
}

}  // namespace tern::infer
