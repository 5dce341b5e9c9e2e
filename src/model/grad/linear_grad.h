// Linear layers for training: y = x·Wᵀ and its backward split into the input-gradient and the
// weight-gradient halves (a pipeline schedule runs them at different times). f32 weights only:
// training keeps f32 master weights. Owns nothing; all buffers are the caller's.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/lowp_gemm.h"
#include "model/weights.h"

namespace tern::model::grad {

// The f32 values of a trainable Linear (checked: training stores every matrix in f32).
const float* f32(const Linear& l);
float* f32(Linear& l);

// y[N, rows] = x[N, cols] · Wᵀ (+ b when the layer has a bias). ldx/ldy: row strides
// (0 = contiguous).
void linear_fwd(const Linear& w, const float* x, int64_t N, float* y, ThreadPool& pool,
                int64_t ldx = 0, int64_t ldy = 0);
// a's rows then b's as one matrix [a.rows + b.rows, cols], when b's f32 values follow a's in
// one allocation (make_f32_weights lays out an MLP's gate and up, and MLA's q_a and kv_a, so)
// and both take the same GEMM precision with no adapter or bias: one GEMM then serves two
// projections of the same input (packed once). Null when they are not so laid out. The view
// is the calling thread's, kept for as long as the thread lives (making one allocates, and a
// step asks for hundreds): it owns nothing, so use it only while a and b are alive.
Linear* joint_rows(const Linear& a, const Linear& b);
// Whether joint_rows(a, b) gives a view, without making one.
bool joint_layout(const Linear& a, const Linear& b);

// dx[N, cols] (+)= dy[N, rows] · W.
void linear_bwd_input(const Linear& w, const float* dy, int64_t N, float* dx, bool accumulate,
                      ThreadPool& pool, int64_t lddy = 0, int64_t lddx = 0);
// dW[rows, cols] += dyᵀ · x over the N rows; db[rows] += Σ_rows dy when the layer has a bias
// (rows summed in order).
void linear_bwd_weight(Linear& dw, const float* dy, const float* x, int64_t N, ThreadPool& pool,
                       int64_t lddy = 0, int64_t ldx = 0);

// Whether linear_bwd_bf16 runs for w and its gradient slot dw: an f32 master weight trained in
// bf16 with no adapter or bias, on a micro-kernel that reads bf16 rows, weight gradients not
// deferred.
bool bf16_backward_applies(const Linear& w, const Linear& dw);

// An output gradient dy[N, cols] rounded once to bf16, in the two layouts of its backward GEMMs
// (kernels::Bf16Layouts: `pairs` feeds the weight gradient, `rows` the input gradient), so
// neither packs it. Its producer rounds each block of rows as it finishes them, while they are
// in cache. The words live in buffers of the constructing thread, 64-byte aligned, reused by
// its next Bf16Grad: one in use per thread at a time.
class Bf16Grad {
 public:
  Bf16Grad(int64_t N, int64_t cols);
  // Rows [r0, r1) from x (row r at x + (r - r0) * ld). r0 even; blocks of 32 rows keep every
  // store a whole line. Any thread, disjoint blocks.
  void round(const float* x, int64_t ld, int64_t r0, int64_t r1) const;
  kernels::LowpRowsA rows() const { return {rows_, rows_stride_}; }
  kernels::LowpRowsA pairs() const { return {pairs_, pairs_stride_}; }
  int64_t cols() const { return cols_; }

 private:
  int64_t cols_, rows_stride_, pairs_stride_;
  uint32_t *rows_, *pairs_;
};
// Rows per block for Bf16Grad::round: 16 row pairs, one 64-byte store per column.
constexpr int64_t kBf16GradBlock = 32;

// linear_bwd_weight then linear_bwd_input with dy already rounded: the same bits as those two
// calls on the f32 dy the words were rounded from. Needs bf16_backward_applies.
void linear_bwd_bf16(const Linear& w, Linear& dw, const Bf16Grad& dy, const float* x, int64_t N,
                     float* dx, bool accumulate, ThreadPool& pool);

// linear_bwd_weight then linear_bwd_input (dx (+)= dy·W), every matrix at its default stride;
// where bf16_backward_applies, dy is rounded once (a Bf16Grad of this thread's) for both GEMMs
// instead of packed by each: the same bits. dx may be x's storage (the weight gradient reads x
// first).
void linear_bwd(const Linear& w, Linear& dw, const float* dy, const float* x, int64_t N, float* dx,
                bool accumulate, ThreadPool& pool);

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

// The zero-bubble split of a backward: while a DeferWeightGrads scope names a deferral on a
// thread, linear_bwd_weight there records its inputs instead of computing (copies: the backward
// reuses its buffers), so the backward yields only input gradients (B); run() computes the
// weight gradients (W) later, in recording order, with the same inputs, hence the same values.
// MoE expert loops hand the deferral to their pool workers (moe_grad.cpp).
class WeightGradDeferral {
 public:
  // Thread-safe: expert loops record from several workers.
  void record(Linear& dw, const float* dy, const float* x, int64_t N, int64_t lddy, int64_t ldx);
  // Computes every recorded weight gradient, then forgets them.
  void run(ThreadPool& pool);
  bool empty() const { return tasks_.empty(); }
  int64_t held_bytes() const { return held_bytes_; }

 private:
  struct Task {
    Linear* dw;
    std::vector<float> dy, x;  // [N, rows], [N, cols], contiguous
    int64_t N;
  };
  std::mutex mu_;
  std::vector<Task> tasks_;
  int64_t held_bytes_ = 0;
};

// Makes `d` (or none, for null) the calling thread's deferral while alive.
class DeferWeightGrads {
 public:
  explicit DeferWeightGrads(WeightGradDeferral* d);
  ~DeferWeightGrads();
  DeferWeightGrads(const DeferWeightGrads&) = delete;
  DeferWeightGrads& operator=(const DeferWeightGrads&) = delete;

 private:
  WeightGradDeferral* outer_;
};
// The calling thread's deferral, or null.
WeightGradDeferral* active_weight_grad_deferral();

}  // namespace tern::model::grad
