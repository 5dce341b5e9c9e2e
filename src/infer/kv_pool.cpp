#include "infer/kv_pool.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"

namespace tern::infer {

KvPool::KvPool(const model::ModelConfig& c, int64_t n_blocks, int64_t block_tokens, DType dtype,
               int64_t n_layers) {
  const model::KvLayout layout =
      model::kv_layout(c, n_layers < 0 ? c.num_hidden_layers : n_layers, block_tokens, dtype);
  if (n_blocks < 1 || n_blocks > (int64_t(1) << 30))
    fail(ErrorKind::request,
         "KV pool: " + std::to_string(n_blocks) + " blocks is outside [1, 2^30]");
  memory_ = Tensor::zeros(DType::u8, {model::KvStore::bytes_for(layout, n_blocks)});
  store_ = model::KvStore{layout, memory_.data_as<uint8_t>(), n_blocks};
  refs_.assign(size_t(n_blocks), 0);
  key_of_.assign(size_t(n_blocks), 0);
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

int64_t KvPool::free_blocks() const {
  int64_t n = int64_t(free_.size());
  for (const auto& [key, e] : index_)
    if (refs_[size_t(e.block)] == 1) ++n;
  return n;
}

void KvPool::evict_one() {
  auto victim = index_.end();
  for (auto it = index_.begin(); it != index_.end(); ++it)
    if (refs_[size_t(it->second.block)] == 1 &&
        (victim == index_.end() || it->second.last_use < victim->second.last_use))
      victim = it;
  if (victim == index_.end())
    fail(ErrorKind::resource, "KV pool exhausted: all " + std::to_string(n_blocks()) +
                                  " blocks of " + std::to_string(block_tokens()) +
                                  " tokens are in use by sequences");
  const int32_t b = victim->second.block;
  index_.erase(victim);
  key_of_[size_t(b)] = 0;
  release(b);
}

int32_t KvPool::allocate() {
  if (free_.empty()) evict_one();
  const int32_t b = free_.back();
  free_.pop_back();
  refs_[size_t(b)] = 1;
  return b;
}

void KvPool::retain(int32_t block) {
  ++refs_[size_t(block)];
}

void KvPool::release(int32_t block) {
  if (--refs_[size_t(block)] == 0) free_.push_back(block);
}

void KvPool::copy_block(int32_t src, int32_t dst) {
  const model::KvLayout& l = store_.layout;
  const size_t bytes = size_t(l.block_tokens * l.token_bytes());
  for (int64_t layer = 0; layer < l.n_layers; ++layer)
    std::memcpy(store_.token(layer, dst, 0), store_.token(layer, src, 0), bytes);
}

uint64_t KvPool::prefix_key(uint64_t previous_key, std::span<const int32_t> tokens) {
  // splitmix64 steps over the previous key and each token: a well-mixed 64-bit chain.
  auto mix = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  uint64_t h = mix(previous_key ^ 0x7465726E6B76ull);
  for (int32_t t : tokens) h = mix(h ^ uint64_t(uint32_t(t)));
  return h | 1;  // never 0, which marks "not published"
}

int32_t KvPool::find_prefix(uint64_t key) {
  const auto it = index_.find(key);
  if (it == index_.end()) return -1;
  it->second.last_use = ++clock_;
  retain(it->second.block);
  return it->second.block;
}

void KvPool::publish_prefix(uint64_t key, int32_t block) {
  if (key_of_[size_t(block)] != 0 || index_.count(key)) return;  // already findable
  index_[key] = Indexed{block, ++clock_};
  key_of_[size_t(block)] = key;
  retain(block);
}

PooledSequence::PooledSequence(PooledSequence&& o) noexcept
    : pool_(o.pool_),
      blocks_(std::move(o.blocks_)),
      tokens_(std::move(o.tokens_)),
      keys_(std::move(o.keys_)),
      length_(o.length_) {
  o.blocks_.clear();
  o.length_ = 0;
}

int64_t PooledSequence::reuse_prefix(std::span<const int32_t> prompt) {
  TERN_CHECK(length_ == 0 && blocks_.empty());
  const int64_t B = pool_->block_tokens();
  // Leave at least the last prompt token to run, starting on a block boundary.
  const int64_t max_blocks = (int64_t(prompt.size()) - 1) / B;
  uint64_t key = 0;
  for (int64_t k = 0; k < max_blocks; ++k) {
    const auto part = prompt.subspan(size_t(k * B), size_t(B));
    key = KvPool::prefix_key(key, part);
    const int32_t b = pool_->find_prefix(key);
    if (b < 0) break;
    blocks_.push_back(b);
    keys_.push_back(key);
    tokens_.insert(tokens_.end(), part.begin(), part.end());
    length_ += B;
  }
  return length_;
}

void PooledSequence::reserve(int64_t n) {
  const int64_t B = pool_->block_tokens();
  if (length_ % B != 0 && !blocks_.empty() && pool_->refcount(blocks_.back()) > 1) {
    const int32_t fresh = pool_->allocate();  // the shared last block is about to be written
    pool_->copy_block(blocks_.back(), fresh);
    pool_->release(blocks_.back());
    blocks_.back() = fresh;
  }
  while (int64_t(blocks_.size()) * B < length_ + n) blocks_.push_back(pool_->allocate());
}

void PooledSequence::advance(std::span<const int32_t> tokens) {
  const int64_t B = pool_->block_tokens();
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  length_ += int64_t(tokens.size());
  TERN_CHECK(int64_t(blocks_.size()) * B >= length_);
  while (int64_t(keys_.size() + 1) * B <= length_) {
    const size_t k = keys_.size();
    const uint64_t prev = k == 0 ? 0 : keys_.back();
    keys_.push_back(KvPool::prefix_key(prev, std::span(tokens_).subspan(k * size_t(B), size_t(B))));
    pool_->publish_prefix(keys_.back(), blocks_[k]);
  }
}

void PooledSequence::clear() {
  for (int32_t b : blocks_) pool_->release(b);
  blocks_.clear();
  tokens_.clear();
  keys_.clear();
  length_ = 0;
}

}  // namespace tern::infer
