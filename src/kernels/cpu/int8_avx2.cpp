// Integer decode and GEMM tile on AVX2 (vpmaddubsw + vpmaddwd); see int8_avx2_impl.h.
#define TERN_INT8_AVXVNNI 0
#define TERN_INT8_SUFFIX avx2
#include "kernels/cpu/int8_avx2_impl.h"
