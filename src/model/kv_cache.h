// KvCache: one sequence's KV cache in memory it owns — the simple case of the paged store (its
// blocks are its own, in order) for callers that run a single sequence: `tern logits`, tests,
// the MTP module. Many sequences share one pool of blocks in infer/ instead. Also keeps the
// ForwardState its forwards use, so a Model stays immutable and shareable.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/forward_state.h"
#include "model/kv_store.h"

namespace tern::model {

class KvCache {
 public:
  static constexpr int64_t kBlockTokens = 64;

  KvCache() = default;
  // Room for `capacity` tokens in each of `n_layers` layers, values stored as `dtype`.
  KvCache(const ModelConfig& c, int64_t n_layers, int64_t capacity, DType dtype = DType::f32);
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  // Marks `n` more positions as filled (after a forward wrote them).
  void advance(int64_t n) { length_ += n; }
  void clear() { length_ = 0; }
  // Fails with ErrorKind::request when n more tokens do not fit.
  void check_room(int64_t n) const;
  // Fails with ErrorKind::request unless this cache was made for `n_layers` layers of `c`.
  void check_model(const ModelConfig& c, int64_t n_layers) const;

  const KvStore& store() const { return store_; }
  SeqBlocks blocks() const { return {table_}; }
  // The forward state for chunks of up to `max_tokens` rows in `mode`, made on first use.
  ForwardState& state(const ModelConfig& c, int64_t max_tokens, MlaMode mode);

 private:
  Tensor storage_;
  KvStore store_;
  std::vector<int32_t> table_;
  int64_t capacity_ = 0, length_ = 0;
  std::optional<ForwardState> state_;
};

}  // namespace tern::model
