// Gradient sums for pipeline parallelism with stage-local weights (train/stage_placement.h).
// Ranks d·P + p of the job are position p of pipeline d. A tensor's gradient is final once every
// rank that holds it — its holders' positions in every pipeline — has summed its copy: one
// communicator per distinct set of holder positions (a stage's layers; the embedding, which a
// first and a last stage both hold; DualPipe's pairs of positions), each all-reducing the
// tensors that set holds in buckets (train/data_parallel.h's GradientReducer). Sets whose group
// is one rank need no communication. With expert parallelism inside the stages (--pp with
// --ep), a routed expert lives on one rank of each position's expert group: its gradient is
// summed over the holders' positions among the ranks of the same place in their groups.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/weights.h"
#include "train/data_parallel.h"
#include "train/stage_placement.h"

namespace tern::train {

// A set of ranks holding the same tensors: the positions `holders` in every pipeline (for a
// split routed expert: only the ranks at this rank's place in their expert groups).
struct HolderGroup {
  std::unique_ptr<dist::Communicator> comm;  // its ranks; every group listed has this rank in it
  model::grad::HeldSlots tensors;            // the tensors it holds together
  std::vector<int> holders;                  // pipeline positions, ascending
  bool split_experts = false;                // routed experts of an expert group
};

// Every holder group this rank is in (`mine`), in one global order (the same on every rank),
// each with its communicator — a collective over world (one split per distinct set; the
// communicators of the sets this rank is not in are kept in `others`, never used, so every
// rank frees the same ones at the same time). grads: this rank's stage-local weights of any
// kind (names are read); stages and ep must outlive the groups.
struct HolderGroups {
  std::vector<HolderGroup> mine;
  std::vector<std::unique_ptr<dist::Communicator>> others;
};
HolderGroups holder_groups(dist::Communicator& world, const model::ModelConfig& c,
                           const StagePlacement& stages, model::ModelWeights& grads,
                           const model::ExpertParallel* ep);

class StageGradReducer {
 public:
  // A collective over world (one split per holder set). grads: this rank's stage-local
  // gradients; stages and world must outlive the reducer.
  // ep: this rank's expert group (among its position's replicas), or null.
  StageGradReducer(dist::Communicator& world, const model::ModelConfig& c,
                   const StagePlacement& stages, model::ModelWeights& grads, int64_t bucket_bytes,
                   const model::ExpertParallel* ep = nullptr);
  // grads = the sum over each tensor's holders. Groups are summed in one global order, so no two
  // ranks wait on each other's groups crosswise. Returns the seconds spent.
  double sum();
  // Bytes this rank sends per step (ring all-reduces) and its buckets, over its groups.
  double ring_bytes_per_step() const;
  int64_t buckets() const;
  // How many groups this rank sums gradients in (those of more than one rank).
  int64_t groups() const { return int64_t(reducers_.size()); }

 private:
  HolderGroups groups_;
  std::vector<std::unique_ptr<GradientReducer>> reducers_;  // groups of two or more, in order
};

}  // namespace tern::train
