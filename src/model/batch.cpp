#include "model/batch.h"

#include <string>

#include "core/error.h"

namespace tern::model {
namespace {

[[noreturn]] void bad(const std::string& why) {
  fail(ErrorKind::request, "batch: " + why);
}

std::string row_str(size_t i) {
  return "row " + std::to_string(i);
}

}  // namespace

void plan_batch(const Batch& b, const KvLayout& kv, int64_t n_blocks, int64_t max_positions,
                int64_t vocab_size, std::vector<SeqRun>& runs) {
  const size_t N = b.tokens.size();
  if (b.positions.size() != N || b.seq_ids.size() != N)
    bad(std::to_string(N) + " tokens but " + std::to_string(b.positions.size()) +
        " positions and " + std::to_string(b.seq_ids.size()) + " sequence ids");
  runs.clear();
  for (size_t i = 0; i < N; ++i) {
    const int32_t s = b.seq_ids[i];
    const int32_t tok = b.tokens[i];
    const int64_t p = b.positions[i];
    if (tok < 0 || tok >= vocab_size)
      bad(row_str(i) + ": token id " + std::to_string(tok) + " is outside the vocabulary [0, " +
          std::to_string(vocab_size) + ")");
    if (s < 0 || size_t(s) >= b.seqs.size())
      bad(row_str(i) + ": sequence id " + std::to_string(s) + " has no block table");
    if (p < 0 || p >= max_positions)
      bad(row_str(i) + ": position " + std::to_string(p) + " is outside the model's context of " +
          std::to_string(max_positions) + " positions");
    if (!runs.empty() && b.seq_ids[i - 1] == s) {
      SeqRun& r = runs.back();
      if (p != r.pos0 + r.n)
        bad(row_str(i) + ": sequence " + std::to_string(s) + " jumps from position " +
            std::to_string(r.pos0 + r.n - 1) + " to " + std::to_string(p));
      ++r.n;
      continue;
    }
    for (const SeqRun& r : runs)  // few runs per step: a scan beats allocating a seen-set
      if (r.seq == s)
        bad(row_str(i) + ": sequence " + std::to_string(s) +
            " appears in two separate runs of rows (its rows must be consecutive)");
    runs.push_back({s, int64_t(i), 1, p, b.seqs[size_t(s)]});
  }
  for (const SeqRun& r : runs) {
    const int64_t need = (r.pos0 + r.n + kv.block_tokens - 1) / kv.block_tokens;
    if (int64_t(r.blocks.blocks.size()) < need)
      bad("the sequence at " + row_str(size_t(r.row0)) + " reaches position " +
          std::to_string(r.pos0 + r.n - 1) + " but its block table holds " +
          std::to_string(r.blocks.blocks.size()) + " blocks of " + std::to_string(kv.block_tokens) +
          " tokens");
    for (int64_t k = 0; k < need; ++k) {
      const int32_t blk = r.blocks.blocks[size_t(k)];
      if (blk < 0 || blk >= n_blocks)
        bad("the sequence at " + row_str(size_t(r.row0)) + " names block " + std::to_string(blk) +
            " of a store with " + std::to_string(n_blocks) + " blocks");
    }
  }
  for (size_t k = 0; k < b.logit_rows.size(); ++k) {
    const int32_t r = b.logit_rows[k];
    if (r < 0 || size_t(r) >= N || (k > 0 && r <= b.logit_rows[k - 1]))
      bad("logit_rows must be ascending rows of the batch; entry " + std::to_string(k) + " is " +
          std::to_string(r));
  }
}

}  // namespace tern::model
