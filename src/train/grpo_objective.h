// The GRPO objective of DeepSeekMath (eq. 3), as DeepSeek-R1 trains with it: per prompt, G
// sampled responses with rewards r_i; advantages normalised within the group; for every
// response token a clipped importance ratio against the policy that sampled it and a KL
// penalty to a frozen reference (the k3 estimator):
//   J = 1/G Σ_i 1/|o_i| Σ_t [ min(ρ A_i, clip(ρ, 1-ε, 1+ε) A_i) − β D_KL ],
//   ρ = π_θ/π_old,  D_KL = π_ref/π_θ − log(π_ref/π_θ) − 1.
// The training loss is −J averaged over the step's groups. Dr. GRPO (--dr-grpo) drops the
// division by the group's standard deviation and by |o_i| (a constant length instead), which
// removes the bias towards long wrong answers.
#pragma once

#include <cstdint>
#include <vector>

namespace tern::train {

struct GrpoSettings {
  double clip = 0.2;     // ε
  double kl = 0.001;     // β
  bool dr_grpo = false;  // length-unbiased variant
};

// A group's advantages: (r − mean) / (std + 1e-4) with the sample standard deviation (n − 1),
// or r − mean under Dr. GRPO. A group of one, or of equal rewards, has zero advantages.
std::vector<double> group_advantages(const std::vector<double>& rewards, bool dr_grpo);

// One response token's share of J and the derivative of that share with respect to
// log π_θ(token): ρA where the min takes the unclipped branch (0 where it takes the clipped one)
// minus β(1 − π_ref/π_θ).
struct TokenObjective {
  double value = 0;  // min(ρA, clip(ρ)A) − β D_KL
  double dvalue_dlogp = 0;
  double kl = 0;  // D_KL (k3)
  bool clipped = false;
};
TokenObjective grpo_token(double logp, double old_logp, double ref_logp, double advantage,
                          const GrpoSettings& s);

// The weight of each token of a response in J summed over a step of n_responses responses:
// 1 / (n_responses · |o_i|), or 1 / (n_responses · max_tokens) under Dr. GRPO.
double grpo_token_weight(int64_t n_responses, int64_t response_tokens, int64_t max_tokens,
                         bool dr_grpo);

}  // namespace tern::train
