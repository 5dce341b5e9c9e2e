// Attention of one query row over a sequence's paged KV blocks, for a range of heads at once,
// with an online softmax across blocks (FlashAttention/FlashMLA style): every cached token is
// read once per call for all its heads, and nothing scales with the context but the loop.
// One routine serves absorbed MLA (all heads share the latent as key and value) and GQA
// (each head reads its KV head's slice of the token row).
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "model/kv_store.h"

namespace tern::model {

// How heads map onto a cached token row [a | b] of kv.layout.token_values() values.
struct PagedAttention {
  int64_t group = 1;     // query heads per KV head (MLA: all heads share one)
  int64_t key_len = 0;   // key slice per KV head, at (h / group) * key_len
  int64_t rope_off = 0;  // a second key slice shared by all heads (MLA's k_pe); rope_len 0: none
  int64_t rope_len = 0;
  int64_t val_base = 0;  // value slice per KV head, at val_base + (h / group) * val_len
  int64_t val_len = 0;
  float scale = 1.0f;
};

struct AttentionQuery {
  const float* qk = nullptr;  // head h's key query at qk + h * qk_stride, [key_len]
  int64_t qk_stride = 0;
  const float* qr = nullptr;  // head h's rope query at qr + h * qr_stride, [rope_len]
  int64_t qr_stride = 0;
  float* out = nullptr;  // head h's output at out + h * out_stride, [val_len] (overwritten)
  int64_t out_stride = 0;
};

// Heads [h0, h1) of query `q` attend over positions [0, n_pos) of `blocks` in `layer`.
// `work` holds paged_attention_work_floats(...) floats (per thread; not zero-filled).
void paged_attention_row(const PagedAttention& p, const KvStore& kv, int64_t layer,
                         const SeqBlocks& blocks, int64_t n_pos, int64_t h0, int64_t h1,
                         const AttentionQuery& q, float* work, const kernels::IsaKernels& isa);

int64_t paged_attention_work_floats(const PagedAttention& p, const KvLayout& kv, int64_t max_heads);

}  // namespace tern::model
