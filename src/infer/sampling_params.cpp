// Validation of SamplingParams: one rule per parameter, each message names the parameter, the
// value and the allowed range so an HTTP 400 or CLI error can be shown as is.
#include "infer/sampling_params.h"

#include <cmath>
#include <sstream>
#include <string>

#include "core/error.h"

namespace tern::infer {
namespace {

template <typename T>
[[noreturn]] void refuse(const char* name, T value, const char* rule) {
  std::ostringstream os;
  os << "sampling parameter '" << name << "' = " << value << ": " << rule;
  fail(ErrorKind::request, os.str());
}

}  // namespace

void SamplingParams::validate() const {
  // Written as !(in range) so NaN fails every rule.
  if (!(std::isfinite(temperature) && temperature >= 0.0f))
    refuse("temperature", temperature, "must be finite and >= 0 (0 = greedy)");
  if (top_k < 0) refuse("top_k", top_k, "must be >= 0 (0 = off)");
  if (!(top_p > 0.0f && top_p <= 1.0f)) refuse("top_p", top_p, "must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) refuse("min_p", min_p, "must be in [0, 1]");
  if (!(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f))
    refuse("repetition_penalty", repetition_penalty, "must be finite and > 0 (1 = off)");
  if (penalty_last_n < -1)
    refuse("penalty_last_n", penalty_last_n, "must be >= -1 (-1 = whole history, 0 = off)");
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    refuse("presence_penalty", presence_penalty, "must be in [-2, 2]");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    refuse("frequency_penalty", frequency_penalty, "must be in [-2, 2]");
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0) refuse("logit_bias", id, "token id must be >= 0");
    if (!std::isfinite(bias)) {
      std::ostringstream os;
      os << "sampling parameter 'logit_bias' for token " << id << " = " << bias
         << ": must be finite";
      fail(ErrorKind::request, os.str());
    }
  }
}

}  // namespace tern::infer
