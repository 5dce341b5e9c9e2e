// Paged KV memory as the layers see it: fixed-size blocks of tokens, each token one row
// [a | b] (MLA: normalised latent c_kv and roped k_pe; GQA: roped K and V of every KV head) in
// f32, bf16 or fp8 e4m3 (then with one f32 scale per part after the values). Owns nothing: infer/'s
// pool or a single-sequence KvCache owns the memory and hands layers a KvStore plus each sequence's
// block table, so sequences can share blocks.
#pragma once

#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "model/config.h"

namespace tern::model {

struct KvLayout {
  int64_t n_layers = 0;
  int64_t block_tokens = 0;          // tokens per block
  int64_t a_width = 0, b_width = 0;  // values per token of each part
  DType dtype = DType::f32;          // f32, bf16 or f8_e4m3

  int64_t token_values() const { return a_width + b_width; }
  // fp8 rows end with the two parts' f32 scales (amax / 448), so each part uses e4m3's range.
  int64_t token_bytes() const {
    return token_values() * dtype_bytes_for(dtype, 1) + (dtype == DType::f8_e4m3 ? 8 : 0);
  }
};

// The layout `c`'s attention needs: MLA caches kv_lora_rank + qk_rope_head_dim values per token
// and layer, GQA caches K and V (num_key_value_heads * head_dim each). ErrorKind::request for a
// dtype the cache cannot hold or a block size outside [1, 4096].
KvLayout kv_layout(const ModelConfig& c, int64_t n_layers, int64_t block_tokens, DType dtype);

// n_blocks blocks for every layer, laid out [n_layers][n_blocks][block_tokens][a | b].
struct KvStore {
  KvLayout layout;
  uint8_t* base = nullptr;
  int64_t n_blocks = 0;

  uint8_t* token(int64_t layer, int64_t block, int64_t slot) const {
    return base + ((layer * n_blocks + block) * layout.block_tokens + slot) * layout.token_bytes();
  }
  // Bytes for n_blocks blocks of every layer.
  static int64_t bytes_for(const KvLayout& l, int64_t n_blocks) {
    return l.n_layers * n_blocks * l.block_tokens * l.token_bytes();
  }
};

// One sequence's view: position p lives in block blocks[p / block_tokens], slot
// p % block_tokens, of every layer.
struct SeqBlocks {
  std::span<const int32_t> blocks;
};

// Stores one token row of f32 values [token_values] in the layout's dtype (rounding to nearest
// even for bf16; fp8 scales each part by its amax / 448).
void kv_store_row(const KvLayout& l, const float* src, uint8_t* dst);
// Reads `rows` consecutive token rows as f32 [rows, token_values]; returns `src` itself when the
// layout already is f32, else fills `buf`.
const float* kv_load_rows(const KvLayout& l, const uint8_t* src, float* buf, int64_t rows);

}  // namespace tern::model
