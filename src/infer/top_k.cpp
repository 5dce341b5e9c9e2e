// Top-k: selection in linear time (nth_element) plus a sort of the k survivors, never a full
// sort of the vocabulary. Runs before temperature: dividing by t > 0 keeps the order anyway.
#include "infer/transforms.h"

namespace tern::infer {

void top_k(Candidates& c, int32_t k) {
  if (k <= 0 || static_cast<size_t>(k) >= c.items.size()) return;
  sort_prefix(c, static_cast<size_t>(k));
  c.items.resize(static_cast<size_t>(k));
  if (c.weighted) renormalise(c);
}

}  // namespace tern::infer
