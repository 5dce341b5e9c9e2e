#include "infer/sequence_runner.h"

#include <algorithm>

#include "core/error.h"

namespace tern::infer {

SequenceRunner::SequenceRunner(const model::Model& m, KvPool& pool, model::ForwardState& st)
    : m_(m),
      pool_(pool),
      st_(st),
      seq_(pool),
      V_(m.config().vocab_size),
      rows_(st.limits().max_tokens),
      logits_(size_t(rows_ * V_)),
      positions_(size_t(rows_)),
      seq_ids_(size_t(rows_), 0),
      wanted_(size_t(rows_)) {}

void SequenceRunner::run(std::span<const int32_t> tokens, int64_t want, int64_t ahead) {
  const int64_t n = int64_t(tokens.size());
  TERN_CHECK(n <= rows_ && want <= n && ahead >= 0);
  seq_.reserve(ahead + n);
  for (int64_t i = 0; i < n; ++i) positions_[size_t(i)] = seq_.length() + ahead + i;
  for (int64_t k = 0; k < want; ++k) wanted_[size_t(k)] = int32_t(n - want + k);
  const model::SeqBlocks seqs[1] = {seq_.blocks()};
  const model::Batch b{tokens, std::span(positions_).first(size_t(n)),
                       std::span(seq_ids_).first(size_t(n)), seqs,
                       std::span(wanted_).first(size_t(want))};
  m_.forward(b, pool_.store(), st_, logits_);
}

int64_t SequenceRunner::prefill(std::span<const int32_t> prompt, bool reuse) {
  const int64_t P = int64_t(prompt.size());
  const int64_t reused = reuse ? seq_.reuse_prefix(prompt) : 0;
  for (int64_t p = reused; p < P; p += rows_) {
    const int64_t n = std::min(rows_, P - p);
    const auto part = prompt.subspan(size_t(p), size_t(n));
    run(part, p + n == P ? 1 : 0);
    seq_.advance(part);
  }
  return reused;
}

}  // namespace tern::infer
