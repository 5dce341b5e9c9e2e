#include "model/kv_cache.h"

#include <string>

#include "core/error.h"

namespace tern::model {

KvCache::KvCache(const ModelConfig& c, int64_t n_layers, int64_t capacity, DType dtype)
    : capacity_(capacity) {
  const KvLayout layout = kv_layout(c, n_layers, kBlockTokens, dtype);
  const int64_t n_blocks = (capacity + kBlockTokens - 1) / kBlockTokens;
  storage_ = Tensor::zeros(DType::u8, {KvStore::bytes_for(layout, n_blocks)});
  store_ = KvStore{layout, storage_.data_as<uint8_t>(), n_blocks};
  for (int64_t b = 0; b < n_blocks; ++b) table_.push_back(int32_t(b));
}

void KvCache::check_model(const ModelConfig& c, int64_t n_layers) const {
  const KvLayout want = kv_layout(c, n_layers, kBlockTokens, store_.layout.dtype);
  const KvLayout& have = store_.layout;
  if (have.n_layers != want.n_layers || have.a_width != want.a_width ||
      have.b_width != want.b_width)
    fail(ErrorKind::request,
         "the KV cache was made for another model (" + std::to_string(have.n_layers) +
             " layers of " + std::to_string(have.a_width) + "+" + std::to_string(have.b_width) +
             " values); this one needs " + std::to_string(want.n_layers) + " layers of " +
             std::to_string(want.a_width) + "+" + std::to_string(want.b_width));
}

void KvCache::check_room(int64_t n) const {
  if (length_ + n > capacity_)
    fail(ErrorKind::request, std::to_string(length_ + n) +
                                 " tokens exceed the context capacity of " +
                                 std::to_string(capacity_) + " tokens");
}

ForwardState& KvCache::state(const ModelConfig& c, int64_t max_tokens, MlaMode mode) {
  if (!state_ || state_->limits().mla_mode != mode || state_->limits().max_tokens < max_tokens)
    state_.emplace(c, store_.layout, ForwardLimits{max_tokens, capacity_, mode});
  return *state_;
}

}  // namespace tern::model
