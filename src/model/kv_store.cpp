#include "model/kv_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"

namespace tern::model {

KvLayout kv_layout(const ModelConfig& c, int64_t n_layers, int64_t block_tokens, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16 && dtype != DType::f8_e4m3)
    fail(ErrorKind::request, "a KV cache of dtype " + std::string(dtype_name(dtype)) +
                                 " is not supported (f32, bf16, f8_e4m3)");
  if (block_tokens < 1 || block_tokens > 4096)
    fail(ErrorKind::request,
         "KV block size " + std::to_string(block_tokens) + " is outside [1, 4096] tokens");
  KvLayout l;
  l.n_layers = n_layers;
  l.block_tokens = block_tokens;
  l.dtype = dtype;
  if (c.is_mla()) {
    l.a_width = c.kv_lora_rank;
    l.b_width = c.qk_rope_head_dim;
  } else {
    l.a_width = l.b_width = c.num_key_value_heads * c.head_dim;
  }
  return l;
}

namespace {

// One part of an fp8 row: e4m3 bytes of v / scale, scale = amax / 448 (1 for an all-zero part).
void store_fp8_part(const float* v, int64_t n, uint8_t* bytes, float* scale) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(v[i]));
  const float s = amax > 0 ? amax / 448.0f : 1.0f;
  for (int64_t i = 0; i < n; ++i) bytes[i] = f32_to_fp8_e4m3(v[i] / s);
  *scale = s;
}

}  // namespace

void kv_store_row(const KvLayout& l, const float* src, uint8_t* dst) {
  const int64_t n = l.token_values();
  switch (l.dtype) {
    case DType::f32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::bf16: {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    default: {  // f8_e4m3: [a bytes | b bytes | scale_a | scale_b]
      float scales[2];
      store_fp8_part(src, l.a_width, dst, &scales[0]);
      store_fp8_part(src + l.a_width, l.b_width, dst + l.a_width, &scales[1]);
      std::memcpy(dst + n, scales, sizeof scales);
    }
  }
}

const float* kv_load_rows(const KvLayout& l, const uint8_t* src, float* buf, int64_t rows) {
  const int64_t n = l.token_values();
  if (l.dtype == DType::f32) return reinterpret_cast<const float*>(src);
  if (l.dtype == DType::bf16) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < rows * n; ++i) buf[i] = bf16_to_f32(s[i]);
    return buf;
  }
  const int64_t row_bytes = l.token_bytes();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = src + r * row_bytes;
    float scales[2];
    std::memcpy(scales, row + n, sizeof scales);
    float* out = buf + r * n;
    for (int64_t i = 0; i < n; ++i)
      out[i] = fp8_e4m3_to_f32(row[i]) * scales[i < l.a_width ? 0 : 1];
  }
  return buf;
}

}  // namespace tern::model
