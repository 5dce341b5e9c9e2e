// How far ahead the 4-row decode kernels prefetch. Rows are consecutive in memory and a tile
// reads 4 of them side by side, so with rows of a few hundred bytes (a 1536-wide Q4 matrix: 864
// bytes) "1 KB ahead in this row" lands in the next row, which the same tile is reading anyway,
// and the 4 short interleaved streams defeat the hardware prefetcher: decode stalled on memory
// latency. The same offset 4 rows down is what the next tile (usually this thread's next) reads:
// a steady distance ahead whatever the row length. Header-only with internal linkage, as
// avx512_hsum.h, so each -m unit keeps its own copy.
#pragma once

#include <xmmintrin.h>

#include <cstdint>

namespace tern::kernels {
namespace {

template <class T>
inline int64_t tile_prefetch_distance(const T* const* rows) {
  const int64_t d =
      4 * (reinterpret_cast<const char*>(rows[1]) - reinterpret_cast<const char*>(rows[0]));
  return d > 0 ? d : 1024;  // a one-row tile repeats its row: 1 KB ahead in it
}

// One prefetch (into L1) per 64 bytes of a kBytes-long block starting at p: a 256-value GGUF
// unit of one row, read a tile later.
template <int64_t kBytes>
inline void prefetch_unit(const uint8_t* p) {
  for (int64_t o = 0; o < kBytes; o += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}

}  // namespace
}  // namespace tern::kernels
