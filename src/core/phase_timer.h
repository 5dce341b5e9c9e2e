// Where a training step spends its time (`tern train --profile`): wall time per phase, summed
// over the step on the thread that enabled the timer, outermost phase only (a GEMM inside the
// loss counts as loss), so the phases add up to at most the step. Off by default: a disabled
// scope is one relaxed load.
#pragma once

#include <cstdint>
#include <string>

namespace tern::phase {

enum Id : int {
  linear_forward,
  linear_input_grad,
  linear_weight_grad,
  attention,
  moe,
  norm,
  head_and_loss,
  optimizer,
  kCount
};

// Starts timing on the calling thread (clears earlier totals).
void enable();
bool enabled();
// Total seconds per phase so far.
double seconds(Id id);
const char* name(Id id);
// A table of the phases as ms per step and share of `step_seconds` (the mean step), plus the
// rest ("other": rope, embedding, residuals, routing bookkeeping, pool waits).
std::string report(double step_seconds, int64_t steps);

// Stops recording while alive (work between steps: validation, sampling). Not inside a Scope.
class Pause {
 public:
  Pause();
  ~Pause();
  Pause(const Pause&) = delete;
  Pause& operator=(const Pause&) = delete;

 private:
  bool was_;
};

class Scope {
 public:
  explicit Scope(Id id);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Id id_;
  bool on_;
  int64_t t0_ = 0;
};

}  // namespace tern::phase
