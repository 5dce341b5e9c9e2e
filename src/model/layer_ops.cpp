#include "model/layer_ops.h"

#include "kernels/cpu/isa.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace tern::model {

void linear_forward(const Linear& l, const float* x, int64_t T, float* y, int64_t ldx, int64_t ldy,
                    ThreadPool* pool) {
  const int64_t lx = ldx ? ldx : l.view.cols, ly = ldy ? ldy : l.view.rows;
  kernels::matmul(kernels::MatmulParams{x, lx, y, ly, T, l.view}, pool);
  if (l.bias.empty()) return;
  const float* b = l.bias.data_as<const float>();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < l.view.rows; ++r) y[t * ly + r] += b[r];
}

void mlp_forward(const MlpWeights& m, const float* x, int64_t T, float* y, Arena& scratch,
                 ThreadPool* pool) {
  const int64_t width = m.gate_proj.view.rows;
  float* g = static_cast<float*>(scratch.allocate(size_t(T * width) * 4, "mlp gate"));
  float* u = static_cast<float*>(scratch.allocate(size_t(T * width) * 4, "mlp up"));
  if (m.gate_proj.bias.empty() && m.up_proj.bias.empty()) {
    const kernels::MatmulParams gu[2] = {{x, m.gate_proj.view.cols, g, width, T, m.gate_proj.view},
                                         {x, m.up_proj.view.cols, u, width, T, m.up_proj.view}};
    kernels::matmul_group(gu, 2, pool);  // one fork-join for both at decode
  } else {
    linear_forward(m.gate_proj, x, T, g, 0, 0, pool);
    linear_forward(m.up_proj, x, T, u, 0, 0, pool);
  }
  kernels::swiglu(g, u, g, T * width);
  linear_forward(m.down_proj, g, T, y, 0, 0, pool);
}

int64_t mlp_scratch_floats(int64_t T, int64_t width) {
  return 2 * T * width + 32;
}

void embed_rows(const Linear& table, const int32_t* ids, int64_t T, float* out) {
  const kernels::IsaKernels& isa = kernels::active_isa();
  const int64_t d = table.view.cols;
  for (int64_t t = 0; t < T; ++t) {
    float* row = out + t * d;
    const float* src = isa.dequant(table.view, ids[t], 0, d, row);
    if (src != row)
      for (int64_t i = 0; i < d; ++i) row[i] = src[i];
  }
}

}  // namespace tern::model
