// Pipeline-parallel training steps (`tern train --pp P`, docs/scale-out.md "Pipeline parallel"):
// the P ranks of a communicator are the stages, each running its share of the layers (the first
// stage the embedding too, the last the head, loss and MTP modules) on micro-batches in the
// order a schedule (pipeline_schedule.h: 1F1B or DualPipe) gives, activations handed forward
// and their gradients back point to point. Zero-bubble backwards compute the input gradient
// (B) at once and the weight gradient (W) when the schedule says (linear_grad.h's deferral).
// A rank reads and writes only its stages' tensors of the weights and gradients, so the trainer
// allocates only those (train/stage_placement.h) and their holders sum the gradients among
// themselves (train/stage_grads.h); with the whole model on every rank, summing gradients over
// ranks gives the one-process gradient up to summation order (the unit tests' route).
// Each step also times this rank's F, B and W so the simulator can be checked against it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/grad/linear_grad.h"
#include "model/grad/model_grad.h"
#include "model/weights.h"
#include "train/pipeline_schedule.h"
#include "train/pipeline_sim.h"

namespace tern::train {

// What one rank measured in its last step, per direction (the stage it runs of each): seconds
// summed over its F, B (without the W run inline) and W chunks and how many ran, and the step's
// wall time from a common start.
struct PipeTiming {
  double seconds[2][3] = {};  // [direction][F, B, W]
  int count[2][3] = {};
  double step = 0;
  int peak_sends_held = 0;  // most outgoing activation / gradient buffers held at once
};

class PipelineRunner {
 public:
  // comm.size() stages; `batch` windows of T tokens per step split into `micro_batches` equal
  // micro-batches. Fails (request) when the shapes do not fit: fewer layers than stages, a
  // batch the micro-batches do not divide, DualPipe's constraints.
  PipelineRunner(dist::Communicator& comm, const model::ModelConfig& c, const std::string& schedule,
                 int micro_batches, int64_t batch, int64_t T, bool recompute);

  // One step over the global batch (tokens, docs: [batch, window_tokens(c, T)]). lw is the
  // one-process loss weighting with lw.targets set to the batch's target count and
  // lw.balance_alpha divided by the micro-batch count (each micro-batch's balance term is its
  // own mean). Gradients of this rank's stages accumulate into g; the result is this rank's
  // share (loss terms from the last stage, balance and expert loads from its MoE layers), so
  // summing results over ranks gives the step's numbers.
  // loss (optional): the last stage's per-row loss for a micro-batch, given the micro-batch and
  // its first window's index in the batch (logit distillation: the teacher's rows of it).
  using MicroLoss = std::function<model::grad::RowLoss(const model::grad::TrainBatch& micro,
                                                       int64_t first_window)>;
  model::grad::StepResult step(const model::ModelWeights& w, model::ModelWeights& g,
                               const int32_t* tokens, const int32_t* docs,
                               const model::grad::LossWeights& lw, ThreadPool& pool,
                               const MicroLoss* loss = nullptr);
  // Whether this rank runs a last stage (of either direction): where the loss is computed.
  bool runs_last_stage() const;

  // Expert parallel inside each stage (`--pp` with `--ep`): every micro-batch state runs only
  // ep's block of routed experts, its MoE layers collectives over ep.comm — the ranks at this
  // position of other pipelines, which run the same schedule, so their collectives pair up op
  // by op. Before the first step.
  void set_expert_parallel(model::ExpertParallel ep) { ep_ = ep; }

  const PipeSchedule& schedule() const { return schedule_; }
  const PipeTiming& last_timing() const { return timing_; }
  // Layers [first, end) of pipeline stage s.
  std::pair<int64_t, int64_t> stage_layers(int stage) const;
  // Every rank's timings of the last step (a collective), then the step time simulated from
  // each stage's mean F, B and W next to the measured one (the slowest rank's).
  struct Check {
    std::vector<ChunkCosts> stages;
    double measured = 0, simulated = 0;
  };
  Check check_simulation();

 private:
  using Key = std::pair<int, int>;  // (direction, micro-batch within it)
  model::grad::ModelGrad& acquire(int dir);
  int tag(PipeChunk c, int kind) const;
  int global_micro(PipeChunk c) const;

  dist::Communicator& comm_;
  model::ModelConfig c_;
  PipeSchedule schedule_;
  int micro_ = 0;
  int64_t windows_ = 0, T_ = 0, S_ = 0;  // per micro-batch
  bool recompute_ = false;
  model::ExpertParallel ep_;
  // Per direction: idle micro-batch states for this rank's stage of that direction.
  std::vector<std::unique_ptr<model::grad::ModelGrad>> all_;
  std::vector<model::grad::ModelGrad*> idle_[2];
  std::map<Key, model::grad::ModelGrad*> in_flight_;
  std::map<Key, std::unique_ptr<model::grad::WeightGradDeferral>> deferred_;
  std::vector<float> in_, grad_in_;  // received activations / gradients
  PipeTiming timing_;
};

}  // namespace tern::train
