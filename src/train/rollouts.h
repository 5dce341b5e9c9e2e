// GRPO's rollouts on tern's own serving engine (serve/engine.h): every sample of every prompt
// of a step is one request to a continuous-batching engine over the policy's current
// in-memory weights, so `parallel` sequences decode together and a group's samples reuse their
// prompt's prefilled blocks. A fresh KV pool per call: blocks cached before an optimizer step
// hold the old weights' keys and values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "infer/sampling_params.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/grpo_step.h"
#include "train/task_prompt.h"

namespace tern::train {

struct RolloutOptions {
  int64_t samples = 16;      // G per prompt
  int64_t max_tokens = 256;  // per response, before its end token
  int64_t parallel = 16;     // sequences decoding at once
  infer::SamplingParams sampling;
  std::vector<int32_t> stop_ids;
  std::string stream;  // names the sampling's random streams (with prompt and sample index)
  bool serving_kernels = true;
};

// Prompt tokens the rollouts needed and how many came from the engine's prefix cache (a
// group's samples after the first reuse their prompt's blocks once they are filled).
struct RolloutStats {
  int64_t prompt_tokens = 0, cached_tokens = 0;
};

// Rollouts problem-major (prompt 0's G samples first); each completion carries the end token
// when the model stopped by itself. `texts` receives each response as rewards read it
// (task_prompt.h).
std::vector<Rollout> generate_rollouts(const model::Model& m, const tokenizer::Tokenizer& tok,
                                       const std::vector<TaskPrompt>& prompts,
                                       const RolloutOptions& o, std::vector<std::string>& texts,
                                       RolloutStats* stats = nullptr);

}  // namespace tern::train
