#include "infer/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace tern::infer {

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

namespace {

// log-softmax of one row into out (double), and its argmax.
int64_t log_softmax(const float* row, int64_t V, std::vector<double>& out) {
  out.resize(size_t(V));
  const int64_t arg = int64_t(std::max_element(row, row + V) - row);
  const double mx = double(row[arg]);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t v = 0; v < V; ++v) out[size_t(v)] = double(row[v]) - lse;
  return arg;
}

void check(const model::Model& m, std::span<const int32_t> ids, const PerplexityOptions& o) {
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
}

// Walks the windows with each model in `models`, handing every scored row to score(target,
// rows) with one logits row per model.
void walk(const std::vector<const model::Model*>& models, std::span<const int32_t> ids,
          const PerplexityOptions& o, const std::function<void(int64_t, int64_t)>& on_window,
          const std::function<void(int32_t, const std::vector<const float*>&)>& score,
          int64_t* windows) {
  const int64_t N = int64_t(ids.size()), V = models[0]->config().vocab_size;
  const int64_t chunk = std::max<int64_t>(1, std::min(o.chunk, o.ctx));
  std::vector<std::vector<float>> logits(models.size(), std::vector<float>(size_t(chunk * V)));
  std::vector<model::KvCache> caches;
  for (const model::Model* m : models) caches.push_back(m->make_cache(o.ctx));
  int64_t total = 1;
  for (int64_t b = 0; b + o.ctx < N; b += o.stride) ++total;
  std::vector<const float*> rows(models.size());
  int64_t prev_end = 0;
  for (int64_t begin = 0; prev_end < N; begin += o.stride) {
    const int64_t end = std::min(begin + o.ctx, N);
    // Targets [first, end) are new in this window; target t is scored by the row before it.
    const int64_t first = std::max(prev_end, begin + 1);
    for (auto& c : caches) c.clear();
    for (int64_t p = begin; p < end; p += chunk) {
      const int64_t n = std::min(chunk, end - p);
      for (size_t k = 0; k < models.size(); ++k)
        models[k]->forward(ids.subspan(size_t(p), size_t(n)), caches[k], logits[k]);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t t = p + i + 1;
        if (t < first || t >= end) continue;
        for (size_t k = 0; k < models.size(); ++k) rows[k] = logits[k].data() + i * V;
        score(ids[size_t(t)], rows);
      }
    }
    prev_end = end;
    ++*windows;
    if (on_window) on_window(*windows, total);
  }
}

}  // namespace

void walk_scored_rows(const model::Model& m, std::span<const int32_t> ids,
                      const PerplexityOptions& o,
                      const std::function<void(int64_t, int64_t)>& on_window,
                      const std::function<void(int32_t, const float*)>& score, int64_t* windows) {
  check(m, ids, o);
  walk(
      {&m}, ids, o, on_window,
      [&](int32_t target, const std::vector<const float*>& rows) { score(target, rows[0]); },
      windows);
}

int64_t scored_targets(int64_t n, const PerplexityOptions& o) {
  int64_t scored = 0, prev_end = 0;
  for (int64_t begin = 0; prev_end < n; begin += o.stride) {
    const int64_t end = std::min(begin + o.ctx, n);
    scored += std::max<int64_t>(0, end - std::max(prev_end, begin + 1));
    prev_end = end;
  }
  return scored;
}

int64_t log_softmax_row(const float* row, int64_t V, std::vector<double>& out) {
  return log_softmax(row, V, out);
}

double kl_of_rows(const std::vector<double>& lp, const std::vector<double>& lq) {
  double kl = 0;  // sum_v q_v (log q_v - log p_v), q the reference
  for (size_t v = 0; v < lq.size(); ++v)
    if (std::isfinite(lq[v])) kl += std::exp(lq[v]) * (lq[v] - lp[v]);  // q_v = 0 adds nothing
  return std::max(0.0, kl);
}

PerplexityResult perplexity(const model::Model& m, std::span<const int32_t> ids,
                            const PerplexityOptions& o,
                            const std::function<void(int64_t, int64_t)>& on_window) {
  check(m, ids, o);
  const int64_t V = m.config().vocab_size;
  PerplexityResult r;
  std::vector<double> lp;
  walk(
      {&m}, ids, o, on_window,
      [&](int32_t target, const std::vector<const float*>& rows) {
        log_softmax(rows[0], V, lp);
        r.nll_sum -= lp[size_t(target)];
        ++r.scored;
      },
      &r.windows);
  return r;
}

Comparison compare_models(const model::Model& m, const model::Model& ref,
                          std::span<const int32_t> ids, const PerplexityOptions& o,
                          const std::function<void(int64_t, int64_t)>& on_window) {
  const int64_t V = m.config().vocab_size;
  if (ref.config().vocab_size != V)
    fail(ErrorKind::request, "the reference model's vocabulary (" +
                                 std::to_string(ref.config().vocab_size) +
                                 ") differs from the model's (" + std::to_string(V) + ")");
  check(m, ids, o);
  check(ref, ids, o);
  Comparison c;
  std::vector<double> lp, lq;
  walk(
      {&m, &ref}, ids, o, on_window,
      [&](int32_t target, const std::vector<const float*>& rows) {
        const int64_t am = log_softmax(rows[0], V, lp), ar = log_softmax(rows[1], V, lq);
        c.kl.push_back(kl_of_rows(lp, lq));
        c.top1_agree += am == ar;
        c.model.nll_sum -= lp[size_t(target)];
        c.ref.nll_sum -= lq[size_t(target)];
        ++c.model.scored, ++c.ref.scored;
      },
      &c.model.windows);
  c.ref.windows = c.model.windows;
  return c;
}

double Comparison::kl_mean() const {
  double s = 0;
  for (double x : kl) s += x;
  return kl.empty() ? 0 : s / double(kl.size());
}

double Comparison::kl_quantile(double q) const {
  if (kl.empty()) return 0;
  std::vector<double> v = kl;
  const size_t k =
      std::min(v.size() - 1, size_t(std::ceil(q * double(v.size()))) - (q > 0 ? 1 : 0));
  std::nth_element(v.begin(), v.begin() + int64_t(k), v.end());
  return v[k];
}

}  // namespace tern::infer
