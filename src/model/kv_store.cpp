#include "model/kv_store.h"

#include <cstring>
#include <string>

#include "core/error.h"

namespace tern::model {

KvLayout kv_layout(const ModelConfig& c, int64_t n_layers, int64_t block_tokens, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    fail(ErrorKind::request,
         "a KV cache of dtype " + std::string(dtype_name(dtype)) + " is not supported (f32, bf16)");
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

void kv_store_values(DType dtype, const float* src, uint8_t* dst, int64_t n) {
  if (dtype == DType::f32) {
    std::memcpy(dst, src, size_t(n) * 4);
    return;
  }
  uint16_t* d = reinterpret_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
}

const float* kv_load_values(DType dtype, const uint8_t* src, float* buf, int64_t n) {
  if (dtype == DType::f32) return reinterpret_cast<const float*>(src);
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) buf[i] = bf16_to_f32(s[i]);
  return buf;
}

}  // namespace tern::model
