// Penalties on repeated tokens, two conventions side by side because CLI users expect the
// llama.cpp one and API clients the OpenAI one. Sparse: only tokens in the history are touched.
#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

void apply_penalties(std::span<float> logits, const TokenHistory& history,
                     const SamplingParams& params) {
  const float rp = params.repetition_penalty;
  if (rp != 1.0f) {
    for (const auto& [id, count] : history.window_counts()) {
      TERN_CHECK(id >= 0 && static_cast<size_t>(id) < logits.size());
      float& l = logits[static_cast<size_t>(id)];
      // Dividing a negative logit would raise it, so those are multiplied (CTRL / HF rule).
      l = l > 0.0f ? l / rp : l * rp;
    }
  }
  const float presence = params.presence_penalty, frequency = params.frequency_penalty;
  if (presence != 0.0f || frequency != 0.0f) {
    for (const auto& [id, count] : history.generated_counts()) {
      TERN_CHECK(id >= 0 && static_cast<size_t>(id) < logits.size());
      logits[static_cast<size_t>(id)] -= presence + frequency * static_cast<float>(count);
    }
  }
}

}  // namespace tern::infer
