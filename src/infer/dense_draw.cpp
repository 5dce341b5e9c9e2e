#include "infer/dense_draw.h"

namespace tern::infer {

int32_t draw_dense(std::span<const float> p, double u) {
  double total = 0;
  for (float x : p) total += x;
  const double target = u * total;
  double cum = 0;
  int32_t last = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    cum += p[i];
    last = int32_t(i);
    if (target < cum) return last;
  }
  return last;
}

}  // namespace tern::infer
