#include "kernels/int8_decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/isa.h"

namespace tern::kernels {

void int8_dot4_vnni(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                    float* out);  // cpu/int8_vnni.cpp
void int8_dot4_vnni_plain(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                          float* out);
bool int8_vnni_built();
void quantize_act_q8_avx512(const float* x, int64_t n, int8_t* q, float* d, int32_t* sum16,
                            int8_t* qeo);  // cpu/int8_vnni.cpp; qeo may be null (not written)
bool int8_dot4xn_vnni(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                      int64_t n_blocks, float* out);  // cpu/int8_vnni.cpp
void int8_dot4_avx2(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                    float* out);  // cpu/int8_avx2.cpp
void quantize_act_q8_avx2(const float* x, int64_t n, int8_t* q, float* d,
                          int32_t* sum16);  // cpu/quantize_avx2.cpp
void int8_dot4_avxvnni(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                       float* out);  // cpu/int8_avxvnni.cpp

namespace {

float f16_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return f16_to_f32(h);
}

bool cpu_has_vnni() {
  __builtin_cpu_init();
  return int8_vnni_built() && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

}  // namespace

float quantize_block_q8(const float* x, int8_t* q) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; ++j) q[j] = int8_t(std::lrintf(x[j] * id));
  return d;
}

namespace {

// Each block's sum from its halves', and the panel kernel's start values from those.
void fill_block_sums(int64_t nb, ActQ8& out) {
  out.panel8.resize(size_t(nb));
  out.panel128.resize(size_t(nb));
  for (int64_t b = 0; b < nb; ++b) {
    out.sum[size_t(b)] = out.sum16[size_t(2 * b)] + out.sum16[size_t(2 * b + 1)];
    out.panel8[size_t(b)] = -8 * out.sum[size_t(b)];
    out.panel128[size_t(b)] = -128 * out.sum[size_t(b)];
  }
}

// The layouts derived from the codes (ActQ8's comments); `qeo_done` when a SIMD unit already
// wrote qeo.
void finish_act_q8(int64_t n, ActQ8& out, bool qeo_done) {
  const int64_t nb = n / 32;
  fill_block_sums(nb, out);
  out.init8.resize(size_t(nb * 8));
  out.init4.resize(size_t(nb * 4));
  out.init4x32.resize(size_t(nb));
  for (int64_t b = 0; b < nb; ++b) {
    out.init4x32[size_t(b)] = -32 * out.sum[size_t(b)];
    std::fill_n(out.init8.begin() + b * 8, 8, -16 * out.sum[size_t(b)]);
    std::fill_n(out.init4.begin() + b * 4, 4, -2 * out.sum[size_t(b)]);
  }
  out.q4x.resize(size_t(n));
  const int8_t* q = out.q.data();
  int64_t g = 0;
  for (; g + 4 <= nb; g += 4)
    for (int64_t i = 0; i < 4; ++i) {
      std::memcpy(out.q4x.data() + g * 32 + i * 16, q + (g + i) * 32, 16);
      std::memcpy(out.q4x.data() + g * 32 + 64 + i * 16, q + (g + i) * 32 + 16, 16);
    }
  std::memcpy(out.q4x.data() + g * 32, q + g * 32, size_t(n - g * 32));
  if (qeo_done) return;
  out.qeo.resize(size_t(n));
  int64_t c = 0;
  for (; c + 128 <= n; c += 128)
    for (int64_t j = 0; j < 64; ++j) {
      out.qeo[size_t(c + j)] = q[c + 2 * j];
      out.qeo[size_t(c + 64 + j)] = q[c + 2 * j + 1];
    }
  std::memcpy(out.qeo.data() + c, q + c, size_t(n - c));
}

void size_act_q8(int64_t n, ActQ8& out) {
  TERN_CHECK(n % 32 == 0);
  out.has_qk = false;
  out.q.resize(size_t(n));
  out.d.resize(size_t(n / 32));
  out.sum.resize(size_t(n / 32));
  out.sum16.resize(size_t(n / 16));
}

}  // namespace

void regroup_act_k(ActQ8& x) {
  if (x.has_qk) return;
  const size_t n = x.q.size();
  TERN_CHECK(n % 256 == 0);
  x.qk.resize(n);
  // Per unit, a transpose of 16 runs x 4 pieces of 4 bytes into 4 registers x 16 lanes.
  for (size_t u = 0; u < n; u += 256)
    for (size_t c = 0; c < 4; ++c)
      for (size_t l = 0; l < 16; ++l)
        std::memcpy(x.qk.data() + u + 64 * c + 4 * l, x.q.data() + u + 16 * l + 4 * c, 4);
  x.has_qk = true;
}

void quantize_act_q8_scalar(const float* x, int64_t n, ActQ8& out) {
  size_act_q8(n, out);
  for (int64_t b = 0; b < n / 32; ++b) {
    int8_t* q = out.q.data() + b * 32;
    out.d[size_t(b)] = quantize_block_q8(x + b * 32, q);
    int32_t s0 = 0, s1 = 0;
    for (int j = 0; j < 16; ++j) s0 += q[j], s1 += q[16 + j];
    out.sum16[size_t(2 * b)] = s0;
    out.sum16[size_t(2 * b + 1)] = s1;
  }
  finish_act_q8(n, out, false);
}

namespace {

// q, d and sum16 (sized) by the SIMD quantiser this CPU has, and qeo too where that is the
// AVX-512 one and `with_qeo` (qeo_written says so). False, having done nothing, without AVX2:
// the scalar form is the caller's.
bool quantize_codes_simd(const float* x, int64_t n, ActQ8& out, bool with_qeo, bool& qeo_written) {
  static const bool avx512 = int8_dot4_vnni_if_supported() != nullptr;
  static const bool avx2 = int8_dot4_avx2_if_supported() != nullptr;
  qeo_written = false;
  if (!avx512 && !avx2) return false;
  size_act_q8(n, out);
  if (!avx512) {
    quantize_act_q8_avx2(x, n, out.q.data(), out.d.data(), out.sum16.data());
    return true;
  }
  if (with_qeo) out.qeo.resize(size_t(n));
  quantize_act_q8_avx512(x, n, out.q.data(), out.d.data(), out.sum16.data(),
                         with_qeo ? out.qeo.data() : nullptr);
  qeo_written = with_qeo;
  return true;
}

}  // namespace

void quantize_act_q8(const float* x, int64_t n, ActQ8& out) {
  bool qeo_written;
  if (!quantize_codes_simd(x, n, out, true, qeo_written)) return quantize_act_q8_scalar(x, n, out);
  finish_act_q8(n, out, qeo_written);
}

void quantize_act_q8_codes(const float* x, int64_t n, ActQ8& out) {
  bool qeo_written;
  if (!quantize_codes_simd(x, n, out, false, qeo_written)) return quantize_act_q8_scalar(x, n, out);
  fill_block_sums(n / 32, out);
  // Empty, so a kernel that wanted them reads nothing rather than another row's layouts.
  out.init8.clear(), out.init4.clear(), out.init4x32.clear(), out.q4x.clear(), out.qeo.clear();
}

void int8_dot4_ref(DType t, const uint8_t* const* rows, const ActQ8& xa, int64_t n_blocks,
                   float* out) {
  const int8_t* xq = xa.q.data();
  const float* xd = xa.d.data();
  const int32_t* xsum = xa.sum.data();
  const int64_t bytes = t == DType::q8_0 ? 34 : 18;
  for (int r = 0; r < 4; ++r) {
    float acc = 0;
    for (int64_t b = 0; b < n_blocks; ++b) {
      const uint8_t* blk = rows[r] + b * bytes;
      const int8_t* x = xq + b * 32;
      int32_t dot = 0;
      if (t == DType::q8_0) {
        for (int j = 0; j < 32; ++j) dot += int32_t(int8_t(blk[2 + j])) * x[j];
      } else {  // low nibbles are elements 0..15, high nibbles 16..31, both offset by 8
        for (int j = 0; j < 16; ++j)
          dot += int32_t(blk[2 + j] & 15) * x[j] + int32_t(blk[2 + j] >> 4) * x[j + 16];
        dot -= 8 * xsum[b];
      }
      acc += f16_scale(blk) * xd[b] * float(dot);
    }
    out[r] = acc;
  }
}

Int8Dot4 int8_dot4_vnni_if_supported() {
  static const bool ok = cpu_has_vnni();
  return ok ? int8_dot4_vnni : nullptr;
}

Int8Dot4 int8_dot4_vnni_plain_if_supported() {
  return int8_dot4_vnni_if_supported() ? int8_dot4_vnni_plain : nullptr;
}

Int8Dot4 int8_dot4_avxvnni_if_supported() {
  static const bool ok = cpu_has_avx_vnni();
  return ok ? int8_dot4_avxvnni : nullptr;
}

Int8Dot4 int8_dot4_avx2_if_supported() {
  static const bool ok = cpu_has_avx2();
  return ok ? int8_dot4_avx2 : nullptr;
}

Int8Dot4 int8_dot4_kernel() {
  static const Int8Dot4 chosen = []() -> Int8Dot4 {
    const std::string isa = active_isa().name;
    if (isa == "avx512" && int8_dot4_vnni_if_supported()) return int8_dot4_vnni;
    if (isa == "avx512" || isa == "avx2") {
      if (Int8Dot4 k = int8_dot4_avxvnni_if_supported()) return k;
      return int8_dot4_avx2_if_supported();
    }
    return int8_dot4_ref;
  }();
  return chosen;
}

Int8Dot4xN int8_dot4xn_kernel() {
  static const Int8Dot4xN chosen =
      int8_dot4_kernel() == int8_dot4_vnni_if_supported() ? int8_dot4xn_vnni : nullptr;
  return chosen;
}

}  // namespace tern::kernels
