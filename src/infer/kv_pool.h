// KvPool: the KV memory many sequences share — a fixed number of blocks (model::KvStore
// layout), handed out with reference counts so sequences can share a prompt prefix, written
// copy-on-write, and a prefix index that keeps finished full blocks findable by the tokens they
// hold, so a new prompt that starts the same way skips that part of the prefill. Sized once;
// nothing is allocated while generating.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/kv_store.h"

namespace tern::infer {

class KvPool {
 public:
  // n_blocks blocks of block_tokens tokens for every main layer of `c` (or for `n_layers`
  // layers, e.g. 1 for the MTP module's own cache), stored as `dtype`.
  KvPool(const model::ModelConfig& c, int64_t n_blocks, int64_t block_tokens, DType dtype,
         int64_t n_layers = -1);
  KvPool(KvPool&&) = default;

  const model::KvStore& store() const { return store_; }
  int64_t block_tokens() const { return store_.layout.block_tokens; }
  int64_t n_blocks() const { return store_.n_blocks; }
  // Blocks no sequence holds (prefix-index-only blocks count: they are evicted on demand).
  int64_t free_blocks() const;

  // A block with refcount 1. Evicts the least recently used prefix-index-only block when none is
  // free; ErrorKind::resource when every block is held by a sequence.
  int32_t allocate();
  void retain(int32_t block);
  void release(int32_t block);
  int32_t refcount(int32_t block) const { return refs_[size_t(block)]; }
  // Copies every layer's rows of `src` into `dst` (copy-on-write of a shared block).
  void copy_block(int32_t src, int32_t dst);

  // Prefix index. The key of a full block is a hash chained over every token from position 0 to
  // the block's end (prefix_key), so a key names one exact prefix.
  static uint64_t prefix_key(uint64_t previous_key, std::span<const int32_t> block_tokens);
  // The block holding that prefix (retained for the caller), or -1.
  int32_t find_prefix(uint64_t key);
  // Makes a full block findable; the index holds its own reference until evicted.
  void publish_prefix(uint64_t key, int32_t block);

 private:
  void evict_one();

  Tensor memory_;
  model::KvStore store_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;  // blocks with refcount 0
  struct Indexed {
    int32_t block;
    uint64_t last_use;
  };
  std::unordered_map<uint64_t, Indexed> index_;
  std::vector<uint64_t> key_of_;  // [n_blocks]: the index key a block is published under, or 0
  uint64_t clock_ = 0;
};

// One sequence's blocks and length in a pool.
class PooledSequence {
 public:
  explicit PooledSequence(KvPool& pool) : pool_(&pool) {}
  ~PooledSequence() { clear(); }
  PooledSequence(PooledSequence&& o) noexcept;
  PooledSequence& operator=(PooledSequence&&) = delete;
  PooledSequence(const PooledSequence&) = delete;

  int64_t length() const { return length_; }
  model::SeqBlocks blocks() const { return {blocks_}; }
  // Takes cached full blocks that hold a prefix of `prompt` (never all of it: the last token
  // must run to give logits); returns how many prompt tokens they cover. Only on an empty
  // sequence.
  int64_t reuse_prefix(std::span<const int32_t> prompt);
  // Makes room to write positions [length, length + n): allocates blocks and copies a shared
  // last block before it is written (copy-on-write).
  void reserve(int64_t n);
  // Marks n more positions written; full blocks whose tokens are known get published.
  void advance(std::span<const int32_t> tokens);
  // Releases every block.
  void clear();

 private:
  KvPool* pool_;
  std::vector<int32_t> blocks_;
  std::vector<int32_t> tokens_;  // every token written, for prefix keys
  std::vector<uint64_t> keys_;   // prefix key of each full block
  int64_t length_ = 0;
};

}  // namespace tern::infer
