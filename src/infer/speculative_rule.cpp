#include "infer/speculative_rule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/random.h"
#include "infer/dense_draw.h"

namespace tern::infer {
namespace {

// Streams of the uniforms the rule needs, apart from the sampler's own draws.
constexpr uint64_t kDraftStream = 0x6472616674ull, kAcceptStream = 0x616363657074ull,
                   kResidualStream = 0x7265736964ull;

}  // namespace

SpeculativeRule::SpeculativeRule(Sampler& sampler, int64_t vocab_size)
    : sampler_(sampler), V_(vocab_size), p_(size_t(vocab_size)), residual_(size_t(vocab_size)) {}

int32_t SpeculativeRule::draft(std::span<const float> row, int64_t position,
                               std::vector<float>& q) {
  TERN_CHECK(int64_t(row.size()) <= V_);
  if (int64_t(row.size()) < V_) {  // a drafter with fewer rows: the rest can never be drafted
    padded_.assign(size_t(V_), -INFINITY);
    std::copy(row.begin(), row.end(), padded_.begin());
    row = padded_;
  }
  if (greedy()) return sampler_.sample(row);
  q.resize(size_t(V_));
  sampler_.probabilities(row, q);
  const SamplingParams& sp = sampler_.params();
  return draw_dense(
      q, rng::uniform_double(sp.seed, sampler_.stream() ^ kDraftStream, uint64_t(position)));
}

int32_t SpeculativeRule::verify(std::span<const float> row, int32_t d, std::span<const float> q,
                                int64_t position, bool* accepted) {
  if (greedy()) {
    const int32_t y = sampler_.sample(row);
    *accepted = y == d;
    return y;
  }
  const SamplingParams& sp = sampler_.params();
  sampler_.probabilities(row, p_);
  const double qd = q.empty() ? 1.0 : double(q[size_t(d)]);
  const double u =
      rng::uniform_double(sp.seed, sampler_.stream() ^ kAcceptStream, uint64_t(position));
  if (qd > 0 && u < double(p_[size_t(d)]) / qd) {
    *accepted = true;
    return d;
  }
  *accepted = false;
  for (int64_t v = 0; v < V_; ++v) {
    const float qv = q.empty() ? (v == d ? 1.0f : 0.0f) : q[size_t(v)];
    residual_[size_t(v)] = std::max(0.0f, p_[size_t(v)] - qv);
  }
  return draw_dense(residual_, rng::uniform_double(sp.seed, sampler_.stream() ^ kResidualStream,
                                                   uint64_t(position)));
}

DraftVerdict verify_drafts(SpeculativeRule& rule, Sampler& sampler, std::span<const int32_t> drafts,
                           const std::function<std::span<const float>(int64_t)>& row,
                           const std::function<std::span<const float>(int64_t)>& q, int64_t first,
                           const std::function<bool(int32_t)>& emit) {
  DraftVerdict v;
  const int64_t k = int64_t(drafts.size());
  for (int64_t i = 0; i < k; ++i) {
    bool accepted = false;
    const int32_t y = rule.verify(row(i), drafts[size_t(i)], q(i), first + i, &accepted);
    sampler.accept(y);
    if (!accepted) {
      v.next = y;
      return v;
    }
    ++v.accepted;
    if (!emit(y)) return v;  // next stays -1: generation ends here
  }
  v.next = sampler.sample(row(k));  // every draft kept: the last row gives one more token
  sampler.accept(v.next);
  return v;
}

}  // namespace tern::infer
