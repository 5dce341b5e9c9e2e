// Stage-local weights for pipeline parallelism (`tern train --pp P`, docs/scale-out.md): which
// ranks of a pipeline hold each tensor. A rank holds the layers of the stages it runs — one
// stage under 1F1B, two (stage r forward, stage P−1−r in the reverse direction) under
// DualPipe — plus the embedding where it runs a first stage and the final norm, head and MTP
// modules where it runs a last one (the MTP modules read the embedding, so a last stage holds it
// too when the model has them, as it does when the head is tied to it). Weights, gradients and
// AdamW moments exist only on the holders; the holders of a tensor sum its gradient among
// themselves (and over the data-parallel replicas of their positions).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "train/pipeline_schedule.h"

namespace tern::train {

// Layers [first, end) of stage s when P stages split L layers: [s·L/P, (s+1)·L/P).
inline std::pair<int64_t, int64_t> pipeline_stage_layers(int64_t L, int P, int s) {
  return {s * L / P, (s + 1) * L / P};
}

class StagePlacement {
 public:
  // schedule's P stages over the c.num_hidden_layers layers (pipeline_stage_layers); position:
  // this rank's in the pipeline.
  StagePlacement(const model::ModelConfig& c, const PipeSchedule& schedule, int position);

  // The pipeline positions (ranks of the pipeline's communicator) holding a tensor of the
  // checkpoint, ascending. Fails (internal) on a name that is not the model's.
  std::vector<int> holders(const std::string& slot) const;
  bool holds(const std::string& slot) const;
  // The holder whose copy counts (the gradient norm, a checkpoint's gather): the lowest.
  int owner(const std::string& slot) const { return holders(slot).front(); }
  int position() const { return position_; }
  int stages() const { return P_; }

 private:
  std::vector<int> stages_of(const std::string& slot) const;
  PipeSchedule schedule_;
  int64_t L_ = 0;
  int P_ = 1, position_ = 0;
  bool last_needs_embedding_ = false;
};

}  // namespace tern::train
