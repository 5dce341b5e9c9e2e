// Softmax weights for the candidates: exp in float (the vocabulary can be 129k wide), summed
// in double so the total does not lose the tail. Weights stay unnormalised; p = weight / total.
#include <cmath>

#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

void softmax(Candidates& c) {
  TERN_CHECK(!c.items.empty());
  const float m = max_logit(c);
  for (Candidate& x : c.items) x.weight = std::exp(x.logit - m);
  renormalise(c);
  c.weighted = true;
}

}  // namespace tern::infer
