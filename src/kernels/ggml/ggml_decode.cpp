#include "kernels/ggml/ggml_decode.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/packed_tiles.h"

namespace tern::kernels {

// Defined in cpu/ggml_vnni.cpp (compiled with AVX-512 VNNI flags; called only after the CPUID
// check below).
void ggml_dot4_vnni(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                    int64_t cols, float* out);
void ggml_packed_dot4_vnni(DType t, const uint8_t* tile, const ActQ8* const* xs, int nt,
                           int64_t cols, float* out);  // cpu/ggml_packed_vnni.cpp
void ggml_dot4_avx2(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                    int64_t cols, float* out);  // cpu/ggml_avx2.cpp
namespace ggml {
UnpackFn unpacker_avx512(DType t);
UnpackFn unpacker_avx2(DType t);  // cpu/ggml_iq_avx2.cpp
void dequant_row_avx512(DType t, UnpackFn unpack, const uint8_t* row, int64_t col0, int64_t n,
                        float* out);
}  // namespace ggml

void ggml_dot4_ref(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                   int64_t cols, float* out) {
  const ggml::GgmlTypeKernels* k = ggml::ggml_type_kernels(t);
  TERN_CHECK(k && nt >= 1 && nt <= 4 && cols % 32 == 0);
  const int64_t be = dtype_block_elems(t), bb = dtype_block_bytes(t);
  double acc[4][4] = {};
  ggml::Unpacked p;
  for (int r = 0; r < 4; ++r) {
    for (int64_t c = 0; c < cols; c += 256) {
      const int n32 = int(std::min<int64_t>(256, cols - c) / 32);
      k->unpack(rows[r] + c / be * bb, n32, &p);
      for (int tok = 0; tok < nt; ++tok) {
        const ActQ8& x = *xs[tok];
        for (int g = 0; g < 2 * n32; ++g) {
          int32_t dot = 0, sum = 0;
          for (int i = 0; i < 16; ++i) {
            const int q = x.q[size_t(c + 16 * g + i)];
            dot += (int(p.u[16 * g + i]) - int(k->offset)) * q;
            sum += q;
          }
          const double xd = x.d[size_t((c + 16 * g) / 32)];
          acc[r][tok] += double(p.s[g]) * xd * dot + double(p.m[g]) * xd * sum;
        }
      }
    }
  }
  for (int tok = 0; tok < nt; ++tok)
    for (int r = 0; r < 4; ++r) out[4 * tok + r] = float(acc[r][tok]);
}

GgmlDot4 ggml_dot4_vnni_if_supported() {
  static const bool ok = int8_dot4_vnni_if_supported() != nullptr;
  return ok ? ggml_dot4_vnni : nullptr;
}

bool ggml_iq_fused_supported() {
  static const bool ok = [] {
    // TERN_IQ_FUSED=0: the unpacking kernel instead (to measure one against the other)
    if (const char* env = std::getenv("TERN_IQ_FUSED"); env && !std::strcmp(env, "0")) return false;
    __builtin_cpu_init();
    return ggml_dot4_vnni_if_supported() && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("avx512bitalg");
  }();
  return ok;
}

GgmlDot4 ggml_dot4_avx2_if_supported() {
  static const bool ok = int8_dot4_avx2_if_supported() != nullptr;
  return ok ? ggml_dot4_avx2 : nullptr;
}

bool ggml_dot4_avx2_takes(DType t) {
  return dtype_is_ggml_block(t) && t != DType::q8_0 && t != DType::q4_0;
}

GgmlDot4 ggml_dot4_kernel() {
  static const GgmlDot4 chosen = []() -> GgmlDot4 {
    const char* isa = active_isa().name;
    if (!std::strcmp(isa, "avx512"))
      if (GgmlDot4 k = ggml_dot4_vnni_if_supported()) return k;
    if (!std::strcmp(isa, "avx512") || !std::strcmp(isa, "avx2"))
      return ggml_dot4_avx2_if_supported();
    return nullptr;
  }();
  return chosen;
}

bool ggml_kernel_takes(DType t) {
  const GgmlDot4 k = ggml_dot4_kernel();
  return k && (k != ggml_dot4_avx2_if_supported() || ggml_dot4_avx2_takes(t));
}

void ggml_packed_dot4_ref(DType t, const uint8_t* tile, const ActQ8* const* xs, int nt,
                          int64_t cols, float* out) {
  thread_local std::vector<uint8_t> scratch;
  const uint8_t* rows[4];
  unpack_tile_rows(t, tile, cols, scratch, rows);
  ggml_dot4_ref(t, rows, xs, nt, cols, out);
}

GgmlPackedDot4 ggml_packed_dot4_vnni_if_supported() {
  return ggml_dot4_vnni_if_supported() ? ggml_packed_dot4_vnni : nullptr;
}

GgmlPackedDot4 ggml_packed_dot4_kernel() {
  // Only beside the VNNI stored-row kernel: under TERN_ISA=avx2 on a VNNI CPU the AVX2 one is
  // active, and packed views must then take the path the stored rows take.
  const GgmlDot4 k = ggml_dot4_kernel();
  return k && k == ggml_dot4_vnni_if_supported() ? ggml_packed_dot4_vnni_if_supported() : nullptr;
}

bool ggml_decode_eligible(DType t, int64_t cols) {
  return dtype_is_ggml_block(t) && t != DType::q8_0 && t != DType::q4_0 && cols % 32 == 0 &&
         cols % dtype_block_elems(t) == 0;
}

namespace ggml {

UnpackFn best_unpacker(DType t) {
  const GgmlTypeKernels* k = ggml_type_kernels(t);
  TERN_CHECK(k != nullptr);
  if (ggml_dot4_vnni_if_supported())
    if (UnpackFn f = unpacker_avx512(t)) return f;
  if (ggml_dot4_avx2_if_supported())
    if (UnpackFn f = unpacker_avx2(t)) return f;
  return k->unpack;
}

void dequant_ggml_row_fast(DType t, const uint8_t* row, int64_t col0, int64_t n, float* out) {
  if (!ggml_dot4_vnni_if_supported()) return dequant_ggml_row(t, row, col0, n, out);
  dequant_row_avx512(t, best_unpacker(t), row, col0, n, out);
}

}  // namespace ggml
}  // namespace tern::kernels
