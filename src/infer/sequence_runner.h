// SequenceRunner: one sequence's forward steps over a shared pool — run rows at its next
// positions, keep the logits of the rows asked for, advance by what was accepted, and prefill a
// prompt (reusing cached blocks). Shared by the generation loops so each is only its policy.
// Buffers are sized once from the forward state's row limit.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "infer/kv_pool.h"
#include "model/forward_state.h"
#include "model/model.h"

namespace tern::infer {

class SequenceRunner {
 public:
  SequenceRunner(const model::Model& m, KvPool& pool, model::ForwardState& st);

  // Runs tokens (at most the state's rows) at positions [length + ahead, length + ahead + n);
  // keeps the logits of the last `want` rows (logits(0) is the first of them). Does not
  // advance. `ahead` > 0 runs past rows written by earlier runs that are not yet advanced over
  // (a draft model drafting several tokens); they must still be in the cache.
  void run(std::span<const int32_t> tokens, int64_t want, int64_t ahead = 0);
  // Marks tokens written by the last run() as part of the sequence (a prefix of that run).
  void advance(std::span<const int32_t> tokens) { seq_.advance(tokens); }
  // Reuses cached blocks, then runs the rest in chunks; logits(0) holds the last row's logits.
  // Returns how many prompt tokens came from the cache.
  int64_t prefill(std::span<const int32_t> prompt, bool reuse);

  std::span<const float> logits(int64_t k) const {
    return std::span(logits_).subspan(size_t(k * V_), size_t(V_));
  }
  int64_t length() const { return seq_.length(); }
  int64_t max_rows() const { return rows_; }

 private:
  const model::Model& m_;
  KvPool& pool_;
  model::ForwardState& st_;
  PooledSequence seq_;
  int64_t V_, rows_;
  std::vector<float> logits_;  // [rows, V]
  std::vector<int64_t> positions_;
  std::vector<int32_t> seq_ids_, wanted_;
};

}  // namespace tern::infer
