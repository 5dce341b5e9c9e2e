#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/isa.h"

namespace tern::kernels {

void rmsnorm(const float* x, const float* w, float* out, int64_t T, int64_t d, float eps) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * d;
    float* o = out + t * d;
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * double(xr[i]);
    const float inv = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
    for (int64_t i = 0; i < d; ++i) o[i] = w[i] * (xr[i] * inv);
  }
}

float silu(float z) {
  return z / (1.0f + std::exp(-z));
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  // exp(-gate) a chunk at a time by the ISA's vector exp (std::exp does not vectorise).
  const IsaKernels& isa = active_isa();
  constexpr int64_t kChunk = 256;
  float e[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = std::min(kChunk, n - i0);
    isa.exp_affine(gate + i0, -1.0f, 0.0f, e, m);
    for (int64_t j = 0; j < m; ++j) out[i0 + j] = gate[i0 + j] / (1.0f + e[j]) * up[i0 + j];
  }
}

void softmax(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  if (mx == -std::numeric_limits<float>::infinity()) {  // fully masked row: all zeros
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void rope_rotate(float* x, int64_t dim, const float* cos, const float* sin, bool interleaved) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    float* a = interleaved ? x + 2 * i : x + i;
    float* b = interleaved ? x + 2 * i + 1 : x + i + half;
    const float x0 = *a, x1 = *b;
    *a = x0 * cos[i] - x1 * sin[i];
    *b = x0 * sin[i] + x1 * cos[i];
  }
}

}  // namespace tern::kernels
