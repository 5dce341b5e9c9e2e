// Linear layers for training: y = x·Wᵀ and its backward split into the input-gradient and the
// weight-gradient halves (a pipeline schedule runs them at different times). f32 weights only:
// training keeps f32 master weights. Owns nothing; all buffers are the caller's.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "model/weights.h"

namespace tern::model::grad {

// The f32 values of a trainable Linear (checked: training stores every matrix in f32).
const float* f32(const Linear& l);
float* f32(Linear& l);

// y[N, rows] = x[N, cols] · Wᵀ (+ b when the layer has a bias). ldx/ldy: row strides
// (0 = contiguous).
void linear_fwd(const Linear& w, const float* x, int64_t N, float* y, ThreadPool& pool,
                int64_t ldx = 0, int64_t ldy = 0);
// dx[N, cols] (+)= dy[N, rows] · W.
void linear_bwd_input(const Linear& w, const float* dy, int64_t N, float* dx, bool accumulate,
                      ThreadPool& pool, int64_t lddy = 0, int64_t lddx = 0);
// dW[rows, cols] += dyᵀ · x over the N rows; db[rows] += Σ_rows dy when the layer has a bias
// (rows summed in order).
void linear_bwd_weight(Linear& dw, const float* dy, const float* x, int64_t N, ThreadPool& pool,
                       int64_t lddy = 0, int64_t ldx = 0);

// While one lives on a thread, the seconds linear_bwd_weight spends on that thread (nested in
// any other phase or not): the W of a pipeline chunk, measured as a whole backward runs
// (train/pipeline_costs.h). Calls on pool workers are not seen: measure with one thread.
class WeightGradClock {
 public:
  WeightGradClock();
  ~WeightGradClock();
  WeightGradClock(const WeightGradClock&) = delete;
  WeightGradClock& operator=(const WeightGradClock&) = delete;
  double seconds() const { return seconds_; }
  void add(double s) { seconds_ += s; }

 private:
  double seconds_ = 0;
  WeightGradClock* outer_;
};

}  // namespace tern::model::grad
