#include "model/grad/mlp_grad.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "kernels/cpu/isa.h"
#include "model/grad/linear_grad.h"

namespace tern::model::grad {
int64_t mlp_store_width(const MlpWeights& w) {
  return w.gate_proj.view.rows;
}

MlpStore mlp_store(const MlpWeights& w, MlpSaved& s, int64_t N) {
  const int64_t f = mlp_store_width(w);
  return mlp_store_at(w, take(s.gate, N * 2 * f), take(s.act, N * f), N, 0);
}

// Gate and up as one GEMM when laid out jointly (joint_rows): g[n, i] and u[n, i] side by side
// in rows of 2f; else each in its own half of the region, rows of f.
MlpStore mlp_store_at(const MlpWeights& w, float* gates, float* acts, int64_t rows, int64_t row) {
  const int64_t f = mlp_store_width(w);
  const bool joint = joint_layout(w.gate_proj, w.up_proj);
  MlpStore at;
  at.ld = joint ? 2 * f : f;
  at.gate = gates + row * at.ld;
  at.up = joint ? at.gate + f : gates + rows * f + row * f;
  at.act = acts + row * f;
  return at;
}

void mlp_fwd(const MlpWeights& w, const float* x, int64_t N, float* y, MlpSaved& s,
             ThreadPool& pool) {
  mlp_fwd(w, x, N, y, mlp_store(w, s, N), pool);
}

void mlp_bwd(const MlpWeights& w, MlpWeights& gw, const float* x, const float* dy, int64_t N,
             float* dx, bool accumulate, MlpSaved& s, ThreadPool& pool) {
  mlp_bwd(w, gw, x, dy, N, dx, accumulate, mlp_store(w, s, N), pool);
}

void mlp_fwd(const MlpWeights& w, const float* x, int64_t N, float* y, const MlpStore& at,
             ThreadPool& pool) {
  const int64_t f = mlp_store_width(w);
  const Linear* joint = joint_rows(w.gate_proj, w.up_proj);
  const int64_t ld = at.ld;
  float *g = at.gate, *u = at.up, *a = at.act;
  if (joint) {
    linear_fwd(*joint, x, N, g, pool);
  } else {
    linear_fwd(w.gate_proj, x, N, g, pool);
    linear_fwd(w.up_proj, x, N, u, pool);
  }
  // a = silu(g)·u, with exp(-g) from the SIMD exp (in a's own storage) over pool pieces of rows:
  // a dense layer's N·f values are millions, which one thread would walk alone.
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(N, std::max<int64_t>(1, 8192 / f), [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n) {
      const float *gr = g + n * ld, *ur = u + n * ld;
      float* ar = a + n * f;
      isa.exp_affine(gr, -1.0f, 0.0f, ar, f);
      for (int64_t i = 0; i < f; ++i) ar[i] = gr[i] / (1.0f + ar[i]) * ur[i];
    }
  });
  linear_fwd(w.down_proj, a, N, y, pool);
}

void mlp_bwd(const MlpWeights& w, MlpWeights& gw, const float* x, const float* dy, int64_t N,
             float* dx, bool accumulate, const MlpStore& at, ThreadPool& pool) {
  const int64_t f = mlp_store_width(w);
  const Linear* joint = joint_rows(w.gate_proj, w.up_proj);
  const int64_t ld = at.ld;
  float *g = at.gate, *u = at.up, *a = at.act;
  float* da = a;  // act is no longer needed after the weight gradient: it takes its gradient
  linear_bwd(w.down_proj, gw.down_proj, dy, a, N, da, false, pool);
  // The gradients' joint view, when they are laid out as the weights are; a deferred weight
  // gradient (pipeline W pass) keeps a pointer to its Linear, so it takes the two halves.
  Linear* joint_grad = nullptr;
  if (joint && !active_weight_grad_deferral()) joint_grad = joint_rows(gw.gate_proj, gw.up_proj);
  // In bf16 the joint gradient is rounded once, block by block as it is made, for both GEMMs.
  std::optional<Bf16Grad> rounded;
  if (joint_grad && bf16_backward_applies(*joint, *joint_grad)) rounded.emplace(N, 2 * f);
  // silu'(z) = σ(z)·(1 + z·(1 − σ(z))); g and u become their gradients in place.
  const kernels::IsaKernels& isa = kernels::active_isa();
  constexpr int64_t kBlock = kBf16GradBlock;
  pool.parallel_for((N + kBlock - 1) / kBlock, 1, [&](int64_t b, int64_t e, int) {
    constexpr int64_t kPiece = 1024;  // a row may be wider: exp in stack pieces
    float ex[kPiece];
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t n0 = blk * kBlock, n1 = std::min(N, n0 + kBlock);
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t p = 0; p < f; p += kPiece) {
          const int64_t m = std::min(kPiece, f - p);
          float *gr = g + n * ld + p, *ur = u + n * ld + p;
          const float* dar = da + n * f + p;
          isa.exp_affine(gr, -1.0f, 0.0f, ex, m);
          for (int64_t i = 0; i < m; ++i) {
            const float z = gr[i], sg = 1.0f / (1.0f + ex[i]);
            const float dg = dar[i] * ur[i] * sg * (1.0f + z * (1.0f - sg));
            ur[i] = dar[i] * z * sg;
            gr[i] = dg;
          }
        }
      if (rounded) rounded->round(g + n0 * ld, ld, n0, n1);
    }
  });
  if (rounded) return linear_bwd_bf16(*joint, *joint_grad, *rounded, x, N, dx, accumulate, pool);
  if (joint_grad) {
    linear_bwd_weight(*joint_grad, g, x, N, pool);
  } else {
    linear_bwd_weight(gw.gate_proj, g, x, N, pool, ld);
    linear_bwd_weight(gw.up_proj, u, x, N, pool, ld);
  }
  if (joint) {
    linear_bwd_input(*joint, g, N, dx, accumulate, pool);
  } else {
    linear_bwd_input(w.gate_proj, g, N, dx, accumulate, pool);
    linear_bwd_input(w.up_proj, u, N, dx, true, pool);
  }
}

}  // namespace tern::model::grad
