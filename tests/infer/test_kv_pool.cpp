// KvPool and PooledSequence: block accounting with reference counts, least-recently-used
// eviction of prefix-index-only blocks, exhaustion as a clear error, prefix reuse by exact
// token prefix, and copy-on-write of a shared partial block.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "infer/kv_pool.h"
#include "model/config.h"

using namespace tern;
using namespace tern::infer;

namespace {

model::ModelConfig tiny_config() {
  const nlohmann::json j = {{"model_type", "llama"},    {"vocab_size", 64},
                            {"hidden_size", 16},        {"intermediate_size", 32},
                            {"num_hidden_layers", 2},   {"num_attention_heads", 2},
                            {"num_key_value_heads", 1}, {"max_position_embeddings", 256}};
  return model::ModelConfig::from_json(j, "tiny.json");
}

std::vector<int32_t> seq_tokens(int n, int offset = 0) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 7 + offset) % 64);
  return t;
}

}  // namespace

TEST(KvPool, AllocateReleaseAndExhaustion) {
  KvPool pool(tiny_config(), 3, 4, DType::f32);
  EXPECT_EQ(pool.free_blocks(), 3);
  const int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_EQ(pool.free_blocks(), 0);
  try {
    pool.allocate();
    FAIL() << "a full pool must refuse";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resource);
    EXPECT_NE(std::string(e.what()).find("all 3 blocks"), std::string::npos) << e.what();
  }
  pool.retain(b);
  pool.release(b);
  EXPECT_EQ(pool.refcount(b), 1);
  pool.release(b);
  EXPECT_EQ(pool.free_blocks(), 1);
  EXPECT_EQ(pool.allocate(), b);
  pool.release(a);
  pool.release(b);
  pool.release(c);
  EXPECT_EQ(pool.free_blocks(), 3);
}

TEST(KvPool, PrefixReuseFindsExactPrefixesOnly) {
  KvPool pool(tiny_config(), 8, 4, DType::f32);
  const std::vector<int32_t> prompt = seq_tokens(10);
  {
    PooledSequence s(pool);
    EXPECT_EQ(s.reuse_prefix(prompt), 0) << "nothing cached yet";
    s.reserve(10);
    s.advance(prompt);  // publishes the two full blocks
    EXPECT_EQ(s.length(), 10);
  }
  EXPECT_EQ(pool.free_blocks(), 8) << "index-only blocks count as free (evictable)";
  PooledSequence same(pool);
  EXPECT_EQ(same.reuse_prefix(prompt), 8);
  PooledSequence exact_blocks(pool);
  // A prompt of exactly 8 tokens keeps its last block to run (it must produce logits).
  EXPECT_EQ(exact_blocks.reuse_prefix(std::span(prompt).first(8)), 4);
  std::vector<int32_t> other = prompt;
  other[5] = (other[5] + 1) % 64;  // differs in the second block only
  PooledSequence diverging(pool);
  EXPECT_EQ(diverging.reuse_prefix(other), 4);
  std::vector<int32_t> first_differs = prompt;
  first_differs[0] = (first_differs[0] + 1) % 64;
  PooledSequence none(pool);
  EXPECT_EQ(none.reuse_prefix(first_differs), 0) << "a key names the whole prefix, not a block";
}

TEST(KvPool, EvictsLeastRecentlyUsedIndexOnlyBlocks) {
  KvPool pool(tiny_config(), 4, 4, DType::f32);
  for (int k = 0; k < 2; ++k) {  // two published sequences of one full block each
    PooledSequence s(pool);
    const auto t = seq_tokens(4, k);
    s.reserve(4);
    s.advance(t);
  }
  PooledSequence touch(pool);  // uses (and so refreshes) sequence 0's block
  const auto t0 = seq_tokens(4, 0);
  std::vector<int32_t> longer = t0;
  longer.push_back(1);
  EXPECT_EQ(touch.reuse_prefix(longer), 4);
  touch.clear();
  // Three fresh blocks: two free ones, then the eviction must take sequence 1's block (older).
  std::vector<int32_t> held = {pool.allocate(), pool.allocate(), pool.allocate()};
  PooledSequence again(pool);
  EXPECT_EQ(again.reuse_prefix(longer), 4) << "the recently used prefix survived";
  std::vector<int32_t> longer1 = seq_tokens(4, 1);
  longer1.push_back(1);
  PooledSequence gone(pool);
  EXPECT_EQ(gone.reuse_prefix(longer1), 0) << "the older prefix was evicted";
  for (int32_t b : held) pool.release(b);
}

TEST(KvPool, SharedPartialBlockIsCopiedBeforeWriting) {
  KvPool pool(tiny_config(), 4, 4, DType::f32);
  PooledSequence s(pool);
  s.reserve(2);
  const auto t = seq_tokens(2);
  // Mark the block's bytes so a copy is visible.
  const int32_t b0 = s.blocks().blocks[0];
  std::memset(pool.store().token(0, b0, 0), 0x5A, 16);
  s.advance(t);
  pool.retain(b0);  // someone else now shares the partial block
  s.reserve(1);
  const int32_t b1 = s.blocks().blocks[0];
  EXPECT_NE(b1, b0) << "copy-on-write";
  EXPECT_EQ(std::memcmp(pool.store().token(0, b1, 0), pool.store().token(0, b0, 0), 16), 0);
  EXPECT_EQ(pool.refcount(b0), 1);
  pool.release(b0);
}
