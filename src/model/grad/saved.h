// Buffers a layer saves between its forward and backward. Each is a std::vector kept across
// steps: it is sized on the first step and reused after, so steady-state steps do not allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tern::model::grad {

using Buffer = std::vector<float>;

// Sizes b to n floats (contents unspecified) and returns its data.
inline float* take(Buffer& b, int64_t n) {
  if (b.size() < size_t(n)) b.resize(size_t(n));
  return b.data();
}

// Sizes b to n floats, zero-filled (gradients that are accumulated into).
inline float* take_zero(Buffer& b, int64_t n) {
  b.assign(size_t(n), 0.0f);
  return b.data();
}

}  // namespace tern::model::grad
