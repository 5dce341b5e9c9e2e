#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"

namespace tern::kernels {

void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, int64_t br, int64_t bc,
                         uint8_t* out, float* scales) {
  const int64_t nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc;
  for (int64_t bi = 0; bi < nbr; ++bi) {
    for (int64_t bj = 0; bj < nbc; ++bj) {
      const int64_t r1 = std::min(rows, (bi + 1) * br), c1 = std::min(cols, (bj + 1) * bc);
      float amax = 0;
      for (int64_t r = bi * br; r < r1; ++r)
        for (int64_t c = bj * bc; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      const float s = amax > 0 ? amax / 448.0f : 1.0f;
      scales[bi * nbc + bj] = s;
      for (int64_t r = bi * br; r < r1; ++r)
        for (int64_t c = bj * bc; c < c1; ++c)
          out[r * cols + c] = f32_to_fp8_e4m3(w[r * cols + c] / s);
    }
  }
}

}  // namespace tern::kernels
