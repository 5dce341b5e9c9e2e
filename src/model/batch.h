// Batch: one forward step over several sequences at different positions, as llama.cpp's batch
// is — prefill chunks and decode steps mixed. Owns only the description and its validation;
// the caller (infer/) owns the tokens, the KV blocks and the block tables.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/kv_store.h"

namespace tern::model {

// Row i is token tokens[i] at position positions[i] of sequence seq_ids[i]. A sequence's rows are
// consecutive and its positions consecutive (a prefill chunk, or one token of a decode step);
// seqs[s] is sequence s's block table and must cover every position its rows reach. The cache
// already holds each sequence's positions before its first row; the forward writes the rows'
// positions. logit_rows lists the rows whose logits are wanted, ascending.
struct Batch {
  std::span<const int32_t> tokens;
  std::span<const int64_t> positions;
  std::span<const int32_t> seq_ids;
  std::span<const SeqBlocks> seqs;
  std::span<const int32_t> logit_rows;
};

// One sequence's rows in a batch.
struct SeqRun {
  int32_t seq = 0;          // its id in Batch::seq_ids
  int64_t row0 = 0, n = 0;  // rows [row0, row0 + n)
  int64_t pos0 = 0;         // position of row0
  SeqBlocks blocks;
};

// Checks `b` against the cache layout, the store's block count and the model's context, and
// fills `runs` (reusing its capacity). ErrorKind::request naming the row or sequence at fault.
void plan_batch(const Batch& b, const KvLayout& kv, int64_t n_blocks, int64_t max_positions,
                int64_t vocab_size, std::vector<SeqRun>& runs);

}  // namespace tern::model
