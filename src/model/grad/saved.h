// Buffers a layer saves between its forward and backward. Each is a std::vector kept across
// steps: it is sized on the first step and reused after, so steady-state steps do not allocate.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

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

// Whole-activation passes (a [B*T, d] copy is megabytes: on one thread it leaves the others
// idle for a good part of a millisecond) spread over the pool in pieces of 16K floats.
constexpr int64_t kPassPiece = int64_t(1) << 14;
inline void pool_copy(const float* src, int64_t n, float* dst, ThreadPool& pool) {
  pool.parallel_for(n, kPassPiece,
                    [&](int64_t b, int64_t e, int) { std::copy(src + b, src + e, dst + b); });
}
// The residual add h += t, and save = the new h when save is not null (in the same pass).
inline void pool_residual_add(float* h, const float* t, int64_t n, float* save, ThreadPool& pool) {
  pool.parallel_for(n, kPassPiece, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) h[i] += t[i];
    if (save) std::copy(h + b, h + e, save + b);
  });
}

}  // namespace tern::model::grad
