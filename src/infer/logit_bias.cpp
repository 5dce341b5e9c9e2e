// Logit bias: the caller's additive per-token adjustment, first so every later step (penalties,
// greedy, cuts) sees the biased logits, as in the OpenAI API. A -100 bias acts as a ban.
#include <string>

#include "core/error.h"
#include "infer/transforms.h"

namespace tern::infer {

void apply_logit_bias(std::span<float> logits, const std::map<int32_t, float>& bias) {
  for (const auto& [id, b] : bias) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size())
      fail(ErrorKind::request, "sampling parameter 'logit_bias': token id " + std::to_string(id) +
                                   " is outside the vocabulary [0, " +
                                   std::to_string(logits.size()) + ")");
    logits[static_cast<size_t>(id)] += b;
  }
}

}  // namespace tern::infer
