// KvCache: per-layer attention state of one sequence. MLA models keep only the normalised
// latent c_kv [kv_lora_rank] and the roped k_pe [qk_rope_head_dim] per token (spec §6.3);
// GQA models keep K and V per KV head. Storage is f32 here; sized once, never reallocated.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace tern::model {

struct LayerCache {
  float* a = nullptr;  // MLA: c_kv [capacity, kv_lora_rank]; GQA: K [capacity, Hkv * head_dim]
  float* b = nullptr;  // MLA: k_pe [capacity, qk_rope_head_dim]; GQA: V [capacity, Hkv * head_dim]
  int64_t a_width = 0, b_width = 0;
};

class KvCache {
 public:
  KvCache() = default;
  // Room for `capacity` tokens in each of `n_layers` layers.
  KvCache(const ModelConfig& c, int64_t n_layers, int64_t capacity);
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  // Marks `n` more positions as filled (after a forward wrote them).
  void advance(int64_t n) { length_ += n; }
  void clear() { length_ = 0; }
  const LayerCache& layer(int64_t i) const { return layers_[size_t(i)]; }
  // Fails with ErrorKind::request when n more tokens do not fit.
  void check_room(int64_t n) const;
  // Fails with ErrorKind::request unless this cache was made for `n_layers` layers of `c`.
  void check_model(const ModelConfig& c, int64_t n_layers) const;

 private:
  Tensor storage_;
  std::vector<LayerCache> layers_;
  int64_t capacity_ = 0, length_ = 0;
};

}  // namespace tern::model
