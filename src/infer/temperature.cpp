// Temperature scaling on the survivors of top-k. The max is subtracted before dividing so a
// tiny t cannot overflow to +inf; softmax is shift-invariant, so the distribution is unchanged.
#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

void apply_temperature(Candidates& c, float t) {
  TERN_CHECK(t > 0.0f && !c.items.empty());
  if (t == 1.0f) return;
  const float m = max_logit(c);
  for (Candidate& x : c.items) x.logit = (x.logit - m) / t;
  c.weighted = false;
}

}  // namespace tern::infer
