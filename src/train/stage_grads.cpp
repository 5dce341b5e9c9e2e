#include "train/stage_grads.h"

#include <algorithm>
#include <string>
#include <utility>

#include "model/grad/f32_weights.h"

namespace tern::train {

HolderGroups holder_groups(dist::Communicator& world, const model::ModelConfig& c,
                           const StagePlacement& stages, model::ModelWeights& grads,
                           const model::ExpertParallel* ep) {
  const bool experts_split = ep && ep->active();
  const auto local_expert = [experts_split](const std::string& name) {
    return experts_split && model::grad::routed_expert_slot(name);
  };
  // The distinct (holder set, split expert or not) in slot order: the same list on every rank
  // (names of the slots this rank does not hold are listed too).
  using Key = std::pair<std::vector<int>, bool>;
  std::vector<Key> keys;
  for (const model::grad::ParamSlot& s : model::grad::param_slots(c, grads)) {
    const Key k{stages.holders(s.name), local_expert(s.name)};
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  const int me = stages.position();
  HolderGroups out;
  for (const Key& key : keys) {
    const std::vector<int>& set = key.first;
    const bool in = std::find(set.begin(), set.end(), me) != set.end();
    // A split expert's copies: the holders at this rank's place in their expert groups.
    const int color = !in ? 0 : key.second ? 1 + ep->rank() : 1;
    std::unique_ptr<dist::Communicator> comm = world.split(color, world.rank());
    if (!in) {
      out.others.push_back(std::move(comm));
      continue;
    }
    const StagePlacement* at = &stages;
    out.mine.push_back({std::move(comm),
                        [at, key, local_expert](const std::string& name) {
                          return local_expert(name) == key.second && at->holders(name) == key.first;
                        },
                        set, key.second});
  }
  return out;
}

StageGradReducer::StageGradReducer(dist::Communicator& world, const model::ModelConfig& c,
                                   const StagePlacement& stages, model::ModelWeights& grads,
                                   int64_t bucket_bytes, const model::ExpertParallel* ep)
    : groups_(holder_groups(world, c, stages, grads, ep)) {
  for (const HolderGroup& g : groups_.mine)
    if (g.comm->size() > 1)
      reducers_.push_back(
          std::make_unique<GradientReducer>(*g.comm, c, grads, bucket_bytes, false, g.tensors));
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
