// A draw by inverse CDF over a dense, not necessarily normalised distribution in id order: what
// speculative decoding needs for draft and residual distributions. The Sampler's own draws go
// through its candidate sets instead (draw.cpp).
#pragma once

#include <cstdint>
#include <span>

namespace tern::infer {

// The id whose cumulative weight first exceeds u * total (u in [0, 1)); the last id with
// weight when rounding leaves u * total at the very end.
int32_t draw_dense(std::span<const float> weights, double u);

}  // namespace tern::infer
