// Greedy choice: one pass over the row, no candidate list, so temperature 0 costs a scan.
// Ties go to the lowest id (strict > while scanning upward), which makes --temp 0 deterministic.
#include <cmath>
#include <string>

#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

int32_t greedy(std::span<const float> logits) {
  int64_t best = -1;
  float best_logit = -INFINITY;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (l > best_logit) {
      best_logit = l;
      best = static_cast<int64_t>(i);
    } else if (std::isnan(l)) {
      fail(ErrorKind::internal, "logits[" + std::to_string(i) + "] is NaN");
    }
  }
  if (best < 0)
    fail(ErrorKind::request,
         "no token can be sampled: every logit is -inf (after logit_bias and penalties)");
  if (best_logit == INFINITY)  // an ordinary model never produces it; overflow or corruption
    fail(ErrorKind::internal, "logits[" + std::to_string(best) +
                                  "] is +inf (model output, or overflow from logit_bias or "
                                  "penalties)");
  return static_cast<int32_t>(best);
}

}  // namespace tern::infer
