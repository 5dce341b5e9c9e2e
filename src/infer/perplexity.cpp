#include "infer/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace tern::infer {

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

PerplexityResult perplexity(const model::Model& m, std::span<const int32_t> ids,
                            const PerplexityOptions& o,
                            const std::function<void(int64_t, int64_t)>& on_window) {
  const model::ModelConfig& c = m.config();
  const int64_t N = int64_t(ids.size()), V = c.vocab_size;
  if (N < 2)
    fail(ErrorKind::request, "perplexity needs at least two tokens, got " + std::to_string(N));
  if (o.ctx < 2 || o.ctx > c.max_position_embeddings)
    fail(ErrorKind::request, "--ctx must be between 2 and the model's context of " +
                                 std::to_string(c.max_position_embeddings) + ", got " +
                                 std::to_string(o.ctx));
  if (o.stride < 1 || o.stride > o.ctx)
    fail(ErrorKind::request, "--stride must be between 1 and --ctx (" + std::to_string(o.ctx) +
                                 "), got " + std::to_string(o.stride));
  for (int32_t id : ids)
    if (id < 0 || id >= V)
      fail(ErrorKind::request,
           "token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(V));
  const int64_t chunk = std::max<int64_t>(1, std::min(o.chunk, o.ctx));
  std::vector<float> logits(size_t(chunk * V));
  int64_t total = 1;
  for (int64_t b = 0; b + o.ctx < N; b += o.stride) ++total;
  PerplexityResult r;
  int64_t prev_end = 0;
  model::KvCache cache = m.make_cache(o.ctx);
  for (int64_t begin = 0; prev_end < N; begin += o.stride) {
    const int64_t end = std::min(begin + o.ctx, N);
    // Targets [first, end) are new in this window; target t is scored by row t - 1 - begin.
    const int64_t first = std::max(prev_end, begin + 1);
    cache.clear();
    for (int64_t p = begin; p < end; p += chunk) {
      const int64_t n = std::min(chunk, end - p);
      m.forward(ids.subspan(size_t(p), size_t(n)), cache, logits);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t t = p + i + 1;  // the target this row predicts
        if (t < first || t >= end) continue;
        const float* row = logits.data() + i * V;
        const float mx = *std::max_element(row, row + V);
        double sum = 0;
        for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - double(mx));
        r.nll_sum += double(mx) + std::log(sum) - double(row[ids[size_t(t)]]);
        ++r.scored;
      }
    }
    prev_end = end;
    ++r.windows;
    if (on_window) on_window(r.windows, total);
  }
  return r;
}

}  // namespace tern::infer
