#include "apps/tern/generation_ledger.h"

#include "account/flops.h"
#include "apps/tern/plan_model.h"

namespace tern::app {

namespace {
constexpr double kFallbackWatts = 150;  // board power assumed when RAPL is unreadable
}

GenerationMeter::GenerationMeter() : t0_(std::chrono::steady_clock::now()) {
  energy_.start();
}

void GenerationMeter::add(int64_t prompt_tokens, int64_t generated_tokens) {
  prompt_ += double(prompt_tokens);
  generated_ += double(generated_tokens);
  sequences_ += 1;
}

account::Ledger GenerationMeter::ledger(const model::ModelConfig& c,
                                        const std::string& stage) const {
  const account::ModelFigures m = model_figures(c);
  const double n = sequences_ > 0 ? sequences_ : 1;
  const int64_t mean_prompt = int64_t(prompt_ / n), mean_gen = int64_t(generated_ / n);
  account::Ledger l;
  l.stage = stage;
  l.hardware = "cpu";
  l.tokens = prompt_ + generated_;
  l.flops =
      prompt_ * account::prefill_flops_per_token(m, std::max<int64_t>(1, mean_prompt)).total() +
      generated_ * account::decode_flops_per_token(m, mean_prompt + mean_gen / 2).total();
  l.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  l.energy = energy_.stop(kFallbackWatts, 1, 1.0);
  return l;
}

}  // namespace tern::app
