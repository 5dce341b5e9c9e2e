#include "model/kv_cache.h"

#include "core/error.h"

namespace tern::model {

KvCache::KvCache(const ModelConfig& c, int64_t n_layers, int64_t capacity) : capacity_(capacity) {
  int64_t aw, bw;
  if (c.is_mla()) {
    aw = c.kv_lora_rank;
    bw = c.qk_rope_head_dim;
  } else {
    aw = bw = c.num_key_value_heads * c.head_dim;
  }
  storage_ = Tensor::zeros(DType::f32, {n_layers, capacity, aw + bw});
  float* base = storage_.data_as<float>();
  for (int64_t l = 0; l < n_layers; ++l) {
    float* p = base + l * capacity * (aw + bw);
    layers_.push_back({p, p + capacity * aw, aw, bw});
  }
}

void KvCache::check_room(int64_t n) const {
  if (length_ + n > capacity_)
    fail(ErrorKind::request, std::to_string(length_ + n) +
                                 " tokens exceed the context capacity of " +
                                 std::to_string(capacity_) + " tokens");
}

}  // namespace tern::model
