// SamplingParams: every knob of token sampling, with one validate() that refuses bad requests.
// Does not own the vocabulary size: logit_bias ids are checked when a Sampler is made for a model.
// Defaults are neutral (plain softmax at temperature 1, no cuts, no penalties), as in the
// OpenAI API; the CLI chooses its own defaults on top.
#pragma once

#include <cstdint>
#include <map>

namespace tern::infer {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy (deterministic argmax); otherwise finite and > 0
  int32_t top_k = 0;         // keep the k most likely tokens; 0 = off
  float top_p = 1.0f;        // nucleus mass in (0, 1]; 1 = off
  float min_p = 0.0f;        // keep tokens with p >= min_p * p_max, in [0, 1]; 0 = off

  // llama.cpp / HF repetition penalty: a token seen in the last penalty_last_n tokens (prompt
  // included) has a positive logit divided by it and a negative one multiplied. 1 = off.
  float repetition_penalty = 1.0f;
  int32_t penalty_last_n = 64;  // window for repetition_penalty; 0 = off, -1 = whole history

  // OpenAI penalties over the tokens generated so far (not the prompt):
  // logit -= presence_penalty * [count > 0] + frequency_penalty * count. Both in [-2, 2].
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;

  // Added to a token's logit before anything else. Ordered so iteration is reproducible.
  std::map<int32_t, float> logit_bias;

  uint64_t seed = 0;  // keys the counter-based RNG; callers pick a random one when unset

  // Throws tern::Error(request) naming the first bad parameter, its value and allowed range.
  void validate() const;
};

}  // namespace tern::infer
