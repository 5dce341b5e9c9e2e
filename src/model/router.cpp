#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/ops.h"

namespace tern::model {

void route_token(const ModelConfig& c, const float* logits, const float* bias, float* scratch,
                 int32_t* idx, float* weight) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  const float kNegInf = -std::numeric_limits<float>::infinity();
  float* score = scratch;    // [E] affinities used for the gating weights
  float* sel = scratch + E;  // [E] what selection ranks (biased for noaux_tc)
  if (c.scoring_func == ScoringFunc::sigmoid) {
    for (int64_t e = 0; e < E; ++e) score[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  } else {
    std::copy_n(logits, E, score);
    kernels::softmax(score, E);
  }
  for (int64_t e = 0; e < E; ++e) sel[e] = score[e] + (bias ? bias[e] : 0.0f);

  if (c.topk_method != TopkMethod::greedy && c.n_group > 1) {
    const int64_t G = c.n_group, per = E / G;
    float group_score[1024];
    for (int64_t g = 0; g < G; ++g) {
      const float* s = sel + g * per;
      if (c.topk_method == TopkMethod::noaux_tc) {  // sum of the group's two best (§7.2)
        float a = kNegInf, b = kNegInf;
        for (int64_t i = 0; i < per; ++i) {
          if (s[i] > a)
            b = a, a = s[i];
          else if (s[i] > b)
            b = s[i];
        }
        group_score[g] = a + b;
      } else {  // group_limited_greedy: the group's best (§7.3)
        group_score[g] = *std::max_element(s, s + per);
      }
    }
    bool keep[1024] = {};
    for (int64_t k = 0; k < c.topk_group; ++k) {
      int64_t best = -1;
      for (int64_t g = 0; g < G; ++g)
        if (!keep[g] && (best < 0 || group_score[g] > group_score[best])) best = g;
      keep[best] = true;
    }
    for (int64_t g = 0; g < G; ++g)
      if (!keep[g]) std::fill_n(sel + g * per, per, kNegInf);
  }

  // Top-K by repeated arg-max over experts not yet taken; ties go to the lower id. Masked
  // experts (-inf) are only reached when fewer than K are eligible.
  float* taken = scratch + 2 * E;  // [E] 0 / 1
  std::fill_n(taken, E, 0.0f);
  for (int64_t k = 0; k < K; ++k) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e)
      if (taken[e] == 0.0f && (best < 0 || sel[e] > sel[best])) best = e;
    taken[best] = 1.0f;
    idx[k] = int32_t(best);
    weight[k] = score[best];
  }
  const bool v3 = c.arch == Arch::deepseek_v3;
  const bool normalise = c.norm_topk_prob && (v3 || K > 1);
  if (normalise) {
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += weight[k];
    for (int64_t k = 0; k < K; ++k) weight[k] = float(weight[k] / (sum + 1e-20));
  }
  // V3 scales after normalising; the V2 family scales only un-normalised weights (§7.3).
  if (v3 || !normalise)
    for (int64_t k = 0; k < K; ++k) weight[k] *= float(c.routed_scaling_factor);
}

}  // namespace tern::model
