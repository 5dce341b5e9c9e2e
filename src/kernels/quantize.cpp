#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>

#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/ggml/quantize_k.h"

namespace tern::kernels {

void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, int64_t br, int64_t bc,
                         uint8_t* out, float* scales) {
  const int64_t nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc;
  for (int64_t bi = 0; bi < nbr; ++bi) {
    for (int64_t bj = 0; bj < nbc; ++bj) {
      const int64_t r1 = std::min(rows, (bi + 1) * br), c1 = std::min(cols, (bj + 1) * bc);
      float amax = 0;
      for (int64_t r = bi * br; r < r1; ++r)
        for (int64_t c = bj * bc; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      const float s = amax > 0 ? amax / 448.0f : 1.0f;
      scales[bi * nbc + bj] = s;
      for (int64_t r = bi * br; r < r1; ++r)
        for (int64_t c = bj * bc; c < c1; ++c)
          out[r * cols + c] = f32_to_fp8_e4m3(w[r * cols + c] / s);
    }
  }
}

void quantize_int_groups(const float* w, int64_t rows, int64_t cols, int bits, int64_t group,
                         uint8_t* out, float* scales) {
  if ((bits != 8 && bits != 4) || group < 1 || (bits == 4 && cols % 2))
    fail(ErrorKind::format, "quantize_int_groups: " + std::to_string(bits) + " bits, group " +
                                std::to_string(group) + ", " + std::to_string(cols) +
                                " columns (want 8 or 4 bits, even columns for 4)");
  const int qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
  const int64_t ng = (cols + group - 1) / group, row_bytes = bits == 8 ? cols : cols / 2;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = out + r * row_bytes;
    if (bits == 4) std::fill_n(dst, row_bytes, uint8_t(0));
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * group, c1 = std::min(cols, c0 + group);
      float amax = 0;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      const float s = amax > 0 ? amax / float(qmax) : 1.0f;
      scales[r * ng + g] = s;
      for (int64_t c = c0; c < c1; ++c) {
        const int q = std::clamp(int(std::nearbyint(w[r * cols + c] / s)), qmin, qmax);
        if (bits == 8)
          dst[c] = uint8_t(int8_t(q));
        else
          dst[c / 2] |= uint8_t((q + 8) << (4 * (c & 1)));
      }
    }
  }
}

namespace {

constexpr int64_t kBlock = 32;

void put_f16(uint8_t* out, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(out, &h, 2);
}

void q8_0_block(const float* x, uint8_t* out) {
  float amax = 0;
  for (int64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  put_f16(out, d);
  for (int64_t j = 0; j < kBlock; ++j) out[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
}

void q4_0_block(const float* x, uint8_t* out) {
  float amax = 0, max = 0;  // max: the value of largest magnitude, sign kept
  for (int64_t j = 0; j < kBlock; ++j)
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
  const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
  put_f16(out, d);
  for (int64_t j = 0; j < kBlock / 2; ++j) {
    const int lo = std::min(15, int(int8_t(x[j] * id + 8.5f)));
    const int hi = std::min(15, int(int8_t(x[j + kBlock / 2] * id + 8.5f)));
    out[2 + j] = uint8_t(lo | (hi << 4));
  }
}

}  // namespace

void quantize_row(DType t, const float* x, int64_t n, uint8_t* out) {
  switch (t) {
    case DType::f32:
      std::memcpy(out, x, size_t(n) * 4);
      return;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) put_f16(out + 2 * i, x[i]);
      return;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t b = f32_to_bf16(x[i]);
        std::memcpy(out + 2 * i, &b, 2);
      }
      return;
    case DType::q8_0:
    case DType::q4_0: {
      if (n % kBlock != 0)
        fail(ErrorKind::format, "quantize_row: " + std::to_string(n) + " values are not whole " +
                                    std::string(dtype_name(t)) + " blocks of 32");
      const int64_t block_bytes = dtype_block_bytes(t);
      for (int64_t b = 0; b < n / kBlock; ++b)
        (t == DType::q8_0 ? q8_0_block : q4_0_block)(x + b * kBlock, out + b * block_bytes);
      return;
    }
    case DType::q4_k:
    case DType::q5_k:
    case DType::q6_k:
      if (n % 256 != 0)
        fail(ErrorKind::format, "quantize_row: " + std::to_string(n) + " values are not whole " +
                                    std::string(dtype_name(t)) + " blocks of 256");
      (t == DType::q4_k   ? ggml::quantize_row_q4_k
       : t == DType::q5_k ? ggml::quantize_row_q5_k
                          : ggml::quantize_row_q6_k)(x, n, out);
      return;
    default:
      fail(ErrorKind::format,
           "quantize_row: cannot encode " + std::string(dtype_name(t)) + " rows");
  }
}

}  // namespace tern::kernels
