#include "model/grad/mlp_grad.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/isa.h"
#include "model/grad/linear_grad.h"

namespace tern::model::grad {

void mlp_fwd(const MlpWeights& w, const float* x, int64_t N, float* y, MlpSaved& s,
             ThreadPool& pool) {
  const int64_t f = w.gate_proj.view.rows;
  float* g = take(s.gate, N * f);
  float* u = take(s.up, N * f);
  float* a = take(s.act, N * f);
  linear_fwd(w.gate_proj, x, N, g, pool);
  linear_fwd(w.up_proj, x, N, u, pool);
  // a = silu(g)·u, with exp(-g) from the SIMD exp (in a's own storage) over pool pieces: a
  // dense layer's N·f values are millions, which one thread would walk alone.
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(N * f, 8192, [&](int64_t b, int64_t e, int) {
    isa.exp_affine(g + b, -1.0f, 0.0f, a + b, e - b);
    for (int64_t i = b; i < e; ++i) a[i] = g[i] / (1.0f + a[i]) * u[i];
  });
  linear_fwd(w.down_proj, a, N, y, pool);
}

void mlp_bwd(const MlpWeights& w, MlpWeights& gw, const float* x, const float* dy, int64_t N,
             float* dx, bool accumulate, MlpSaved& s, ThreadPool& pool) {
  const int64_t f = w.gate_proj.view.rows;
  float* g = s.gate.data();
  float* u = s.up.data();
  float* a = s.act.data();
  linear_bwd_weight(gw.down_proj, dy, a, N, pool);
  float* da = a;  // act is no longer needed: reuse it for its gradient
  linear_bwd_input(w.down_proj, dy, N, da, false, pool);
  // silu'(z) = σ(z)·(1 + z·(1 − σ(z))); g and u become their gradients in place.
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(N * f, 8192, [&](int64_t b, int64_t e, int) {
    constexpr int64_t kPiece = 1024;  // a chunk may span several grains: exp in stack pieces
    float ex[kPiece];
    for (int64_t p = b; p < e; p += kPiece) {
      const int64_t n = std::min(kPiece, e - p);
      isa.exp_affine(g + p, -1.0f, 0.0f, ex, n);
      for (int64_t i = p; i < p + n; ++i) {
        const float z = g[i], sg = 1.0f / (1.0f + ex[i - p]);
        const float dg = da[i] * u[i] * sg * (1.0f + z * (1.0f - sg));
        u[i] = da[i] * z * sg;
        g[i] = dg;
      }
    }
  });
  linear_bwd_weight(gw.gate_proj, g, x, N, pool);
  linear_bwd_weight(gw.up_proj, u, x, N, pool);
  linear_bwd_input(w.gate_proj, g, N, dx, accumulate, pool);
  linear_bwd_input(w.up_proj, u, N, dx, true, pool);
}

}  // namespace tern::model::grad
