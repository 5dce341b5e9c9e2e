#include "model/grad/linear_grad.h"

#include "core/error.h"
#include "core/phase_timer.h"
#include "kernels/gemm.h"
#include "kernels/lowp_gemm.h"

namespace tern::model::grad {
namespace {

// The GEMM at w's training precision. E4M3 (DeepSeek-V3's recipe): the forward and the input
// gradient quantise the activation / output gradient in 1x128 tiles along K and the weight in
// 128x128 blocks; the weight gradient quantises both operands in tiles along the tokens.
void train_gemm(const Linear& w, const kernels::GemmParams& p, bool weight_grad, ThreadPool& pool) {
  if (!w.train_lowp) return kernels::gemm(p, &pool);
  kernels::LowpSpec s = *w.train_lowp;
  s.a_group = kernels::Fp8Group::tile;
  s.b_group = weight_grad ? kernels::Fp8Group::tile : kernels::Fp8Group::block;
  kernels::gemm_lowp(p, s, &pool);
}

}  // namespace

const float* f32(const Linear& l) {
  TERN_CHECK(l.data.dtype() == DType::f32);
  return l.data.data_as<const float>();
}

float* f32(Linear& l) {
  TERN_CHECK(l.data.dtype() == DType::f32);
  return l.data.data_as<float>();
}

void linear_fwd(const Linear& w, const float* x, int64_t N, float* y, ThreadPool& pool, int64_t ldx,
                int64_t ldy) {
  const phase::Scope timer(phase::linear_forward);
  const int64_t rows = w.view.rows, cols = w.view.cols;
  if (!ldy) ldy = rows;
  train_gemm(w, {N, rows, cols, x, ldx ? ldx : cols, false, f32(w), cols, true, y, ldy, false},
             false, pool);
  if (w.bias.empty()) return;
  const float* b = w.bias.data_as<const float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < rows; ++r) y[n * ldy + r] += b[r];
}

void linear_bwd_input(const Linear& w, const float* dy, int64_t N, float* dx, bool accumulate,
                      ThreadPool& pool, int64_t lddy, int64_t lddx) {
  const phase::Scope timer(phase::linear_input_grad);
  const int64_t rows = w.view.rows, cols = w.view.cols;
  train_gemm(w,
             {N, cols, rows, dy, lddy ? lddy : rows, false, f32(w), cols, false, dx,
              lddx ? lddx : cols, accumulate},
             false, pool);
}

void linear_bwd_weight(Linear& dw, const float* dy, const float* x, int64_t N, ThreadPool& pool,
                       int64_t lddy, int64_t ldx) {
  const phase::Scope timer(phase::linear_weight_grad);
  const int64_t rows = dw.view.rows, cols = dw.view.cols;
  if (!lddy) lddy = rows;
  train_gemm(dw, {rows, cols, N, dy, lddy, true, x, ldx ? ldx : cols, false, f32(dw), cols, true},
             true, pool);
  if (dw.bias.empty()) return;
  float* db = dw.bias.data_as<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < rows; ++r) db[r] += dy[n * lddy + r];
}

}  // namespace tern::model::grad
