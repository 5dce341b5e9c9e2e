// Tensors that live on one rank only — routed experts under expert parallelism, pipeline stages'
// layers with stage-local weights — gathered to rank 0 of their communicator for what needs the
// whole model: a checkpoint, a sample or a validation pass from the lead (a transient copy).
#pragma once

#include <functional>
#include <string>

#include "dist/communicator.h"
#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/grad/f32_weights.h"
#include "model/weights.h"

namespace tern::train {

// The rank of comm holding a tensor (by checkpoint name); every rank must give the same answer.
using SlotOwner = std::function<int(const std::string& name)>;

// Collective over comm. On rank 0: fresh f32 weights of the whole model, each tensor rank 0
// holds copied from `local` and every other one received from its owner. Elsewhere: sends the
// tensors this rank owns and returns empty weights. The MTP modules' views of the embedding and
// head are not sent: the whole model's share the main tensors.
// lead_holds: the tensors rank 0 collects (every rank must agree; the others are not sent, and
// rank 0's weights leave them unallocated); empty: all.
model::ModelWeights gather_slots(const model::ModelConfig& c, dist::Communicator& comm,
                                 const SlotOwner& owner, model::ModelWeights& local,
                                 const model::grad::HeldSlots& lead_holds = {});

// gather_slots over ep.comm, each routed expert from its owner, the rest from rank 0.
model::ModelWeights gather_experts(const model::ModelConfig& c, const model::ExpertParallel& ep,
                                   model::ModelWeights& local);

}  // namespace tern::train
