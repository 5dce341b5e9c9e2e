// The AVX-512 RMSNorm rows behind IsaKernels::rmsnorm_row / rmsnorm_bwd_row (cpu/isa.h has
// their contracts); in their own file for its compile flags.
#pragma once

#include <cstdint>

namespace tern::kernels {

float rmsnorm_row_avx512(const float* x, const float* w, float* y, int64_t d, float eps);
void rmsnorm_bwd_row_avx512(const float* dy, const float* x, const float* w, float r, float* dx,
                            bool accumulate, float* dw, int64_t d);

}  // namespace tern::kernels
