#include "model/kv_cache.h"

#include "core/error.h"

#include <utility>

namespace tern::model {

namespace {
// Values per token of the two cache parts: MLA latent / rope key, or GQA K / V.
std::pair<int64_t, int64_t> cache_widths(const ModelConfig& c) {
  if (c.is_mla()) return {c.kv_lora_rank, c.qk_rope_head_dim};
  return {c.num_key_value_heads * c.head_dim, c.num_key_value_heads * c.head_dim};
}
}  // namespace

KvCache::KvCache(const ModelConfig& c, int64_t n_layers, int64_t capacity) : capacity_(capacity) {
  const auto [aw, bw] = cache_widths(c);
  storage_ = Tensor::zeros(DType::f32, {n_layers, capacity, aw + bw});
  float* base = storage_.data_as<float>();
  for (int64_t l = 0; l < n_layers; ++l) {
    float* p = base + l * capacity * (aw + bw);
    layers_.push_back({p, p + capacity * aw, aw, bw});
  }
}

void KvCache::check_model(const ModelConfig& c, int64_t n_layers) const {
  const auto [aw, bw] = cache_widths(c);
  const bool ok = int64_t(layers_.size()) == n_layers &&
                  (n_layers == 0 || (layers_[0].a_width == aw && layers_[0].b_width == bw));
  if (!ok)
    fail(ErrorKind::request, "the KV cache was made for another model (" +
                                 std::to_string(layers_.size()) + " layers of " +
                                 std::to_string(layers_.empty() ? 0 : layers_[0].a_width) + "+" +
                                 std::to_string(layers_.empty() ? 0 : layers_[0].b_width) +
                                 " values); this one needs " + std::to_string(n_layers) +
                                 " layers of " + std::to_string(aw) + "+" + std::to_string(bw));
}

void KvCache::check_room(int64_t n) const {
  if (length_ + n > capacity_)
    fail(ErrorKind::request, std::to_string(length_ + n) +
                                 " tokens exceed the context capacity of " +
                                 std::to_string(capacity_) + " tokens");
}

}  // namespace tern::model
