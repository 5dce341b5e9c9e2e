// Decode (and a few tokens) on GGUF-quantised weights in integers: the activation row is
// quantised once to int8 blocks of 32 (ActQ8, as the Q8_0 / Q4_0 kernels use), each 4-row tile
// of weights is unpacked 256 values at a time into ggml::Unpacked (codes u, scales and mins per
// 16), and each 64 codes meet 64 activations in one vpdpbusd. Per 16 values the integer sum
// sum(u * q) - offset * sum(q) is exact; it is scaled by s * d_x, and the min term m * d_x *
// sum(q) added, in f32. The only rounding beyond the exact path's is the activations' (at most
// d_x / 2 = amax / 254 per value, as int8_decode.h bounds it).
// Owns: the dot-product kernel, its scalar reference and the SIMD unpackers it uses. Does not
// own: block layouts (ggml/unpack.h) or the tile and thread loops (serving_paths.cpp).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/ggml/unpack.h"
#include "kernels/int8_decode.h"

namespace tern::kernels {

// out[4 * t + r] = sum over the row's cols values of W(rows[r]) * x_t, for t < nt (1..4): the
// four rows start at rows[r] (whole blocks of type t, cols a multiple of the block size).
using GgmlDot4 = void (*)(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                          int64_t cols, float* out);

// The scalar reference: scalar unpacking, exact integer sums per 16 values, double accumulation.
void ggml_dot4_ref(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                   int64_t cols, float* out);

// AVX-512 VNNI (with the SIMD unpackers where a type has one) when this CPU runs it, else null.
GgmlDot4 ggml_dot4_vnni_if_supported();
// Whether the VNNI kernel may take IQ2_XXS, IQ2_XS, IQ1_S and IQ1_M straight from their blocks
// (cpu/ggml_iq_vnni.cpp also needs AVX-512 VBMI and BITALG; TERN_IQ_FUSED=0 says no); otherwise
// they go through their unpackers like the rest.
bool ggml_iq_fused_supported();
// AVX2 (cpu/ggml_avx2.cpp, the i-quants in cpu/ggml_iq_avx2.cpp) where the CPU has it, else
// null; ggml_dot4_avx2_takes says which types it computes (every type but Q8_0 / Q4_0, which
// have their own kernels in int8_decode.h).
GgmlDot4 ggml_dot4_avx2_if_supported();
bool ggml_dot4_avx2_takes(DType t);
// The kernel the serving paths use: the VNNI one on the avx512 ISA, else the AVX2 one on the
// avx512 / avx2 ISAs, else null; ggml_kernel_takes(t) says whether it computes type t (the
// types it does not take go the exact path, which dequantises through the same unpackers).
GgmlDot4 ggml_dot4_kernel();
bool ggml_kernel_takes(DType t);

// The same over one packed tile (packed_tiles.h: Q2_K..Q6_K): every xs[t]
// must have its qk order current (regroup_act_k).
using GgmlPackedDot4 = void (*)(DType t, const uint8_t* tile, const ActQ8* const* xs, int nt,
                                int64_t cols, float* out);
// The scalar reference: the tile's rows unpacked to stored form, then ggml_dot4_ref.
void ggml_packed_dot4_ref(DType t, const uint8_t* tile, const ActQ8* const* xs, int nt,
                          int64_t cols, float* out);
// AVX-512 VNNI when this CPU runs it, else null.
GgmlPackedDot4 ggml_packed_dot4_vnni_if_supported();
// The kernel the serving paths use for packed tiles: the VNNI one on the avx512 ISA, else null
// (then nothing is prepacked in that type: model/prepack.cpp asks).
GgmlPackedDot4 ggml_packed_dot4_kernel();

// Whether the kernel takes w: a ggml block type whose rows are whole 32-value groups.
bool ggml_decode_eligible(DType t, int64_t cols);

namespace ggml {
// The SIMD unpacker for t on this CPU (AVX-512BW; AVX2 for the i-quants below IQ4), else the
// scalar one: tests compare them.
UnpackFn best_unpacker(DType t);
// Values [col0, col0 + n) of a row of type t (col0 and n whole blocks) through best_unpacker,
// expanded with SIMD where the CPU has AVX-512: the exact path's dequantisation.
void dequant_ggml_row_fast(DType t, const uint8_t* row, int64_t col0, int64_t n, float* out);
}  // namespace ggml

}  // namespace tern::kernels
