// Perplexity of a model over a token sequence with sliding windows (as Hugging Face's
// perplexity recipe and llama-perplexity do): windows of `ctx` tokens start every `stride`
// tokens, each runs from an empty cache, and each scores only the targets the previous window
// did not (so every token after the first is scored once, with up to ctx - 1 tokens of context).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/model.h"

namespace tern::infer {

struct PerplexityOptions {
  int64_t ctx = 512;     // tokens per window (at most the model's context)
  int64_t stride = 256;  // tokens between window starts (1..ctx)
  int64_t chunk = 64;    // rows per forward call (bounds the logits buffer)
};

struct PerplexityResult {
  int64_t scored = 0;  // targets scored
  double nll_sum = 0;  // sum of -log p(target)
  int64_t windows = 0;
  double mean_nll() const { return scored ? nll_sum / double(scored) : 0; }
  double perplexity() const;
};

// ErrorKind::request for fewer than two tokens, a ctx beyond the model's context or < 2, a
// stride outside [1, ctx]. on_window(done, total) reports progress.
PerplexityResult perplexity(const model::Model& m, std::span<const int32_t> ids,
                            const PerplexityOptions& o,
                            const std::function<void(int64_t, int64_t)>& on_window = {});

// The model against a reference (an unquantised original, say) on the same windows: both
// perplexities, and per scored token the KL divergence KL(ref || model) of the next-token
// distributions and whether their top-1 tokens agree (llama-perplexity --kl-divergence's
// measures). The vocabularies must match (ErrorKind::request).
struct Comparison {
  PerplexityResult model, ref;
  std::vector<double> kl;  // per scored token, in order
  int64_t top1_agree = 0;
  double kl_mean() const;
  double kl_quantile(double q) const;  // q in [0, 1]; nearest rank
  double top1_agreement() const { return kl.empty() ? 0 : double(top1_agree) / double(kl.size()); }
};
// The per-row scoring both share, exposed for saved references (infer/saved_logprobs.h): walks
// the windows of `m` over `ids` and hands each scored row's target and logits [V] to score.
void walk_scored_rows(const model::Model& m, std::span<const int32_t> ids,
                      const PerplexityOptions& o,
                      const std::function<void(int64_t, int64_t)>& on_window,
                      const std::function<void(int32_t, const float*)>& score, int64_t* windows);
// How many targets the windows of `o` score over n tokens (n - 1 when stride < ctx).
int64_t scored_targets(int64_t n, const PerplexityOptions& o);
// log_softmax of a logits row into out (doubles); returns the argmax.
int64_t log_softmax_row(const float* row, int64_t V, std::vector<double>& out);
// KL(ref || model) of two log-probability rows (clamped at 0).
double kl_of_rows(const std::vector<double>& model_lp, const std::vector<double>& ref_lp);

Comparison compare_models(const model::Model& m, const model::Model& ref,
                          std::span<const int32_t> ids, const PerplexityOptions& o,
                          const std::function<void(int64_t, int64_t)>& on_window = {});

}  // namespace tern::infer
