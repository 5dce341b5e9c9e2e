#include "kernels/int_group_decode.h"

#include <algorithm>
#include <string>

#include "kernels/cpu/isa.h"

namespace tern::kernels {

void int_group_dot4_vnni(const IntGroupRows& w, const ActQ8& x,
                         float* out);  // cpu/int_group_vnni.cpp

IntGroupRows int_group_rows(const WeightView& w, int64_t r0) {
  IntGroupRows g;
  g.dtype = w.dtype;
  g.cols = w.cols;
  g.group = w.block_cols;
  tile_rows(w, r0, g.rows, g.scales);
  return g;
}

void int_group_dot4_ref(const IntGroupRows& w, const ActQ8& x, float* out) {
  for (int r = 0; r < 4; ++r) {
    float acc = 0;
    for (int64_t b = 0; b < w.cols / 32; ++b) {
      int32_t dot = 0;
      for (int64_t j = 0; j < 32; ++j) {
        const int64_t c = b * 32 + j;
        const int q = w.dtype == DType::i8 ? int(int8_t(w.rows[r][c]))
                                           : int((w.rows[r][c / 2] >> (4 * (c & 1))) & 15) - 8;
        dot += q * x.q[size_t(c)];
      }
      const float s = w.scales[r] ? w.scales[r][b * 32 / w.group] : 1.0f;
      acc += s * x.d[size_t(b)] * float(dot);
    }
    out[r] = acc;
  }
}

IntGroupDot4 int_group_dot4_vnni_if_supported() {
  static const bool ok = int8_dot4_vnni_if_supported() != nullptr;
  return ok ? int_group_dot4_vnni : nullptr;
}

IntGroupDot4 int_group_dot4_kernel() {
  static const IntGroupDot4 chosen = []() -> IntGroupDot4 {
    if (std::string(active_isa().name) != "avx512") return nullptr;
    return int_group_dot4_vnni_if_supported();
  }();
  return chosen;
}

bool int_group_eligible(const WeightView& w) {
  return (w.dtype == DType::i8 || w.dtype == DType::i4) && w.cols % 32 == 0 &&
         w.block_cols % 32 == 0 && (w.scales == nullptr || w.block_rows == 1);
}

}  // namespace tern::kernels
