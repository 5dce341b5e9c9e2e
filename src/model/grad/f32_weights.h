// Trainable weights: every tensor of a model as zero-filled f32 (parameters, their gradients
// and optimizer moments all take this one layout), enumerated through visit_weights so the
// slots, names and shapes are the loader's. MTP modules share the main embedding and LM head
// (spec §8.2), so their embed_tokens / shared_head.head slots alias the main tensors.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/weights.h"

namespace tern::model::grad {

// Which tensors (by checkpoint name) this rank holds: pipeline stages (train/stage_placement.h).
// Empty: all of them.
using HeldSlots = std::function<bool(const std::string& name)>;

// Zero-filled f32 ModelWeights for c (MTP modules included when c has them). With expert
// parallelism (ep active) the routed experts other ranks hold are left unallocated, and so is
// every tensor `held` rejects. Each MLP's gate_proj and up_proj are views of one [2f, d]
// allocation (gate first), and so are MLA's q_a_proj and kv_a_proj_with_mqa: training
// multiplies each pair as one matrix (joint_rows).
ModelWeights make_f32_weights(const ModelConfig& c, const ExpertParallel* ep = nullptr,
                              const HeldSlots& held = {});

// The values make_f32_weights(c, ep, held) would allocate, without allocating them.
int64_t f32_weight_count(const ModelConfig& c, const ExpertParallel* ep = nullptr,
                         const HeldSlots& held = {});

// Random init: normal(0, std) matrices, ones for norms, zeros for correction biases; each tensor
// from its own counter-based stream, so a seed gives the same bits on every machine.
void init_random(const ModelConfig& c, ModelWeights& w, uint64_t seed, double std);

// Whether a slot name is a routed expert's ("model.layers.L.mlp.experts.E.…"); its index in e.
bool routed_expert_slot(const std::string& name, int64_t* e = nullptr);

// One tensor slot of f32 ModelWeights, as the optimizer and checkpoints see it.
struct ParamSlot {
  std::string name;  // Hugging Face name
  Shape shape;
  float* data = nullptr;
  int64_t size = 0;
  // Trained by the optimizer: false for e_score_correction_bias (moved by the balancing rule)
  // and the MTP slots that alias the main embedding / head.
  bool trainable = true;
  bool alias = false;  // the MTP embedding / head copies
  bool decay = false;  // weight decay applies (matrices)
  // Expert or pipeline parallel: a tensor another rank holds (no storage here: data null,
  // size 0, not trainable).
  bool elsewhere = false;
};

// The slots of w in checkpoint order (w made by make_f32_weights for the same c).
std::vector<ParamSlot> param_slots(const ModelConfig& c, ModelWeights& w);

}  // namespace tern::model::grad
