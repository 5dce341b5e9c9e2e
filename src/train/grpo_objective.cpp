#include "train/grpo_objective.h"

#include <algorithm>
#include <cmath>

namespace tern::train {

std::vector<double> group_advantages(const std::vector<double>& rewards, bool dr_grpo) {
  const size_t n = rewards.size();
  std::vector<double> a(n, 0.0);
  if (n < 2) return a;
  double mean = 0;
  for (double r : rewards) mean += r;
  mean /= double(n);
  double var = 0;
  for (double r : rewards) var += (r - mean) * (r - mean);
  const double sd = std::sqrt(var / double(n - 1));
  if (sd == 0) return a;
  for (size_t i = 0; i < n; ++i)
    a[i] = dr_grpo ? rewards[i] - mean : (rewards[i] - mean) / (sd + 1e-4);
  return a;
}

TokenObjective grpo_token(double logp, double old_logp, double ref_logp, double advantage,
                          const GrpoSettings& s) {
  TokenObjective t;
  const double ratio = std::exp(logp - old_logp);
  const double clipped_ratio = std::clamp(ratio, 1.0 - s.clip, 1.0 + s.clip);
  const double plain = ratio * advantage, held = clipped_ratio * advantage;
  // The min takes the clipped branch only where the ratio left the trust region in the
  // direction the advantage pushes it; there the token gives no gradient.
  t.clipped = held < plain;
  const double surrogate = t.clipped ? held : plain;
  const double q = std::exp(ref_logp - logp);  // π_ref / π_θ
  t.kl = q - (ref_logp - logp) - 1.0;
  t.value = surrogate - s.kl * t.kl;
  t.dvalue_dlogp = (t.clipped ? 0.0 : plain) - s.kl * (1.0 - q);
  return t;
}

double grpo_token_weight(int64_t n_responses, int64_t response_tokens, int64_t max_tokens,
                         bool dr_grpo) {
  const int64_t len = dr_grpo ? max_tokens : response_tokens;
  return 1.0 / (double(std::max<int64_t>(n_responses, 1)) * double(std::max<int64_t>(len, 1)));
}

}  // namespace tern::train
