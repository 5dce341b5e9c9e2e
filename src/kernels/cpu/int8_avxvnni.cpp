// Integer decode and GEMM tile on AVX-VNNI (256-bit vpdpbusd); see int8_avx2_impl.h.
#define TERN_INT8_AVXVNNI 1
#define TERN_INT8_SUFFIX avxvnni
#include "kernels/cpu/int8_avx2_impl.h"
