// matmul: y = x · Wᵀ for activations in f32 and weights in any WeightView dtype.
// Owns: tiling and threading over output rows. Does not own: dequantisation or dot products
// (cpu/isa.h primitives). Weights are dequantised a 4-row x 512-column tile at a time into a
// stack buffer, so quantised weights are read once per call and nothing is allocated.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/weight.h"

namespace tern::kernels {

struct MatmulParams {
  const float* x = nullptr;  // [T, w.cols], row stride ldx
  int64_t ldx = 0;
  float* y = nullptr;  // [T, w.rows], row stride ldy (overwritten)
  int64_t ldy = 0;
  int64_t T = 0;
  WeightView w;
};

// Runs on `pool` (the global pool when null) with the given ISA (active_isa() when null).
void matmul(const MatmulParams& p, ThreadPool* pool = nullptr, const IsaKernels* isa = nullptr);

// Several independent matmuls (a step's gate and up projections, a token's routed experts) as
// one parallel loop where they take the one-token integer path, so the pool forks and joins
// once for all of them; otherwise one after another. Outputs must not overlap any input.
void matmul_group(const MatmulParams* ps, int64_t n, ThreadPool* pool = nullptr);

// Whether matmuls on this thread take the serving kernels (serving_paths.h: integer and bf16
// dot products on quantised activations, AMX tiles) instead of the exact f32 path. Model::forward
// sets it from its ForwardState for the duration of a step; off by default, so kernels are exact
// unless asked.
bool serving_kernels();
class ScopedServingKernels {
 public:
  explicit ScopedServingKernels(bool on);
  ~ScopedServingKernels();
  ScopedServingKernels(const ScopedServingKernels&) = delete;
  ScopedServingKernels& operator=(const ScopedServingKernels&) = delete;

 private:
  bool previous_;
};

// Calls fn(p, ctx) with every matmul's parameters (its x rows and weight) on this thread while
// alive, before the product — e.g. to collect activation statistics for quantisation
// (model/imatrix.h) or routing (model/routing_stats.h). Scopes nest: an enclosing one keeps being
// called (first) and is the active one again after. Costs one thread-local test per matmul when
// none is alive. Destroy in reverse order of creation, on the creating thread.
using MatmulObserver = void (*)(const MatmulParams& p, void* ctx);
class ScopedMatmulObserver {
 public:
  ScopedMatmulObserver(MatmulObserver fn, void* ctx);
  ~ScopedMatmulObserver();
  ScopedMatmulObserver(const ScopedMatmulObserver&) = delete;
  ScopedMatmulObserver& operator=(const ScopedMatmulObserver&) = delete;
  void notify(const MatmulParams& p) const;

 private:
  MatmulObserver fn_;
  void* ctx_;
  const ScopedMatmulObserver* previous_;
};

// Convenience for contiguous x [T, cols] and y [T, rows].
inline void matmul(const float* x, const WeightView& w, float* y, int64_t T) {
  matmul(MatmulParams{x, w.cols, y, w.rows, T, w});
}

}  // namespace tern::kernels
