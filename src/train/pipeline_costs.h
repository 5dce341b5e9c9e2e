// Measures what a pipeline stage costs per micro-batch: the forward (F), input-gradient (B) and
// weight-gradient (W) time of every layer of a model on one thread, with random weights, so the
// schedule simulator (pipeline_sim.h) can compare 1F1B and DualPipe in real units. W is the
// time the backward spends in weight-gradient GEMMs (linear_grad.h's WeightGradClock), B the
// rest of the backward. The embedding, the head with its loss and the MTP modules are timed
// too and belong to the end stages (docs/scale-out.md, "Pipeline schedules").
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "train/pipeline_sim.h"

namespace tern::train {

struct LayerCosts {
  double forward = 0, backward = 0, weight = 0;  // seconds, medians over the repeats
};

struct ChunkMeasurement {
  std::vector<LayerCosts> layers;  // [num_hidden_layers]
  LayerCosts ends;                 // the embedding, final norm, head, loss and MTP modules
  int64_t tokens = 0;              // per micro-batch: windows × seq
  int64_t hand_off_bytes = 0;      // one micro-batch's activations (or their gradient), f32
  // Each of P stages' F, B, W: its layers (split as train/pipeline_runner.h splits them), the
  // ends on the last stage; hand_off left 0.
  std::vector<ChunkCosts> stages(int P) const;
  // Their mean: the uniform chunk DeepSeek's formula assumes.
  ChunkCosts chunk(int P) const;
};

// Runs the forward and backward of one layer of each kind (dense, MoE) `repeat` times (after one
// warm-up) on a micro-batch of `windows` × `seq` tokens; every layer gets its kind's medians.
// Holds two copies of one layer of each kind, not the model. Fails (request) on sizes below 1
// or a seq beyond the context.
ChunkMeasurement measure_layer_costs(const model::ModelConfig& c, int64_t windows, int64_t seq,
                                     int repeat, uint64_t seed);

}  // namespace tern::train
