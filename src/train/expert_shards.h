// Expert-parallel training keeps each routed expert on one rank only (its weights, gradients and
// AdamW moments: model::grad::make_f32_weights with an ExpertParallel). What needs the whole
// model — a checkpoint, a sample from rank 0 — gathers the experts to rank 0 for the moment.
#pragma once

#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/weights.h"

namespace tern::train {

// Collective over ep.comm. On rank 0: fresh f32 weights of the whole model, every slot copied
// from `local` and every other rank's routed experts received from it. Elsewhere: sends this
// rank's experts and returns empty weights.
model::ModelWeights gather_experts(const model::ModelConfig& c, const model::ExpertParallel& ep,
                                   model::ModelWeights& local);

}  // namespace tern::train
