// The account of a generation job (`tern eval --task`, the teacher of `tern distill`): prompt
// and generated tokens, their forward FLOPs (spec §14 formulas: prefill at the prompt's length,
// decode against the mean context), wall time and energy, as one account::Ledger.
#pragma once

#include <chrono>
#include <string>

#include "account/energy.h"
#include "account/ledger.h"
#include "model/config.h"

namespace tern::app {

class GenerationMeter {
 public:
  GenerationMeter();
  // Counts one finished sequence.
  void add(int64_t prompt_tokens, int64_t generated_tokens);
  // The ledger so far; stage names the job, e.g. "eval:arithmetic".
  account::Ledger ledger(const model::ModelConfig& c, const std::string& stage) const;

 private:
  account::EnergyMeter energy_;
  std::chrono::steady_clock::time_point t0_;
  double prompt_ = 0, generated_ = 0, sequences_ = 0;
};

}  // namespace tern::app
