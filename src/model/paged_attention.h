// Attention of one query row over a sequence's paged KV blocks, for a range of heads at once,
// with an online softmax across blocks (FlashAttention/FlashMLA style): every cached token is
// read once per call for all its heads, and nothing scales with the context but the loop.
// One routine serves absorbed MLA (all heads share the latent as key and value) and GQA
// (each head reads its KV head's slice of the token row).
#pragma once

#include <cstdint>

#include <span>

#include "kernels/cpu/isa.h"
#include "model/batch.h"
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

// Rows r < R of one sequence at once (a prefill tile): row r's heads attend positions
// [0, n_pos[r]) with query q[r]; every KV block is widened once for all R rows.
void paged_attention_rows(const PagedAttention& p, const KvStore& kv, int64_t layer,
                          const SeqBlocks& blocks, const int64_t* n_pos, int64_t R, int64_t h0,
                          int64_t h1, const AttentionQuery* q, float* work,
                          const kernels::IsaKernels& isa);

// Consecutive rows of one sequence run, attended together by paged_attention_rows: in a prefill
// chunk, a tile of rows shares one widening of each cached block.
struct RowTile {
  int64_t run = 0, row0 = 0, n = 0;
};
constexpr int64_t kAttentionTileRows = 16;
// Splits every run into tiles of up to max_rows rows into `out` (room for one per row);
// returns how many.
int64_t split_row_tiles(std::span<const SeqRun> runs, int64_t max_rows, RowTile* out);

// Work floats for up to max_heads heads of up to max_rows rows (paged_attention_row: 1 row).
int64_t paged_attention_work_floats(const PagedAttention& p, const KvLayout& kv, int64_t max_heads,
                                    int64_t max_rows = 1);

// Split-K (FlashDecoding): positions [p0, p1) only (p0 a multiple of the block size), leaving
// the un-normalised partial — per head the value sum [val_len], then the running max and the
// sum of weights — in `part` (paged_attention_part_floats(p, h1 - h0)). Partials of disjoint
// ranges combine exactly with paged_attention_merge, so one decode row's context can be split
// across threads and every cached token is read once per step for all heads.
void paged_attention_part(const PagedAttention& p, const KvStore& kv, int64_t layer,
                          const SeqBlocks& blocks, int64_t p0, int64_t p1, int64_t h0, int64_t h1,
                          const AttentionQuery& q, float* part, float* work,
                          const kernels::IsaKernels& isa);
int64_t paged_attention_part_floats(const PagedAttention& p, int64_t heads);
// Heads [h0, h1) of q.out from n_parts partials of heads [0, heads) laid out one after another.
void paged_attention_merge(const PagedAttention& p, const float* parts, int64_t n_parts,
                           int64_t heads, int64_t h0, int64_t h1, const AttentionQuery& q);

}  // namespace tern::model
