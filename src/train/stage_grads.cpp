#include "train/stage_grads.h"

#include <algorithm>
#include <string>

#include "model/grad/f32_weights.h"

namespace tern::train {

StageGradReducer::StageGradReducer(dist::Communicator& world, const model::ModelConfig& c,
                                   const StagePlacement& stages, model::ModelWeights& grads,
                                   int64_t bucket_bytes) {
  // The distinct holder sets in slot order: the same list on every rank (names of the slots
  // this rank does not hold are listed too).
  std::vector<std::vector<int>> sets;
  for (const model::grad::ParamSlot& s : model::grad::param_slots(c, grads)) {
    const std::vector<int> h = stages.holders(s.name);
    if (std::find(sets.begin(), sets.end(), h) == sets.end()) sets.push_back(h);
  }
  const int me = stages.position();
  for (const std::vector<int>& set : sets) {
    const bool in = std::find(set.begin(), set.end(), me) != set.end();
    comms_.push_back(world.split(in ? 0 : 1, world.rank()));
    if (!in || comms_.back()->size() < 2) continue;
    reducers_.push_back(std::make_unique<GradientReducer>(
        *comms_.back(), c, grads, bucket_bytes, false,
        [&stages, set](const std::string& name) { return stages.holders(name) == set; }));
  }
}

double StageGradReducer::sum() {
  double seconds = 0;
  for (auto& r : reducers_) seconds += r->sum();
  return seconds;
}

double StageGradReducer::ring_bytes_per_step() const {
  double bytes = 0;
  for (const auto& r : reducers_) bytes += r->ring_bytes_per_step();
  return bytes;
}

int64_t StageGradReducer::buckets() const {
  int64_t n = 0;
  for (const auto& r : reducers_) n += r->buckets();
  return n;
}

}  // namespace tern::train
