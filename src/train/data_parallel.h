// Data parallelism for `tern train` under mpirun (docs/scale-out.md): every rank holds the whole
// model, draws the same global batch from the same sampler and trains on its slice of it (ranks
// × slice = --batch, so a command line means the same run at any rank count). Each rank
// normalises its cross-entropy by the global batch's target count and its sequence-wise balance
// term by the rank count, so the gradients summed over ranks (in buckets) are the one-process
// gradient up to summation order, and every rank takes the same optimizer step. Logged numbers
// and expert loads are summed over ranks, so the log and the aux-loss-free bias update see the
// whole batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "model/config.h"
#include "model/weights.h"
#include "train/gradient_buckets.h"

namespace tern::train {

class GradientReducer {
 public:
  // All-reduces the trainable gradients of `grads` in the buckets of train/gradient_buckets.h
  // (at most `bucket_bytes`; a larger tensor is its own bucket, reduced in place).
  // local_experts, include: see BucketLayout (expert parallel, pipeline stages).
  GradientReducer(dist::Communicator& comm, const model::ModelConfig& c, model::ModelWeights& grads,
                  int64_t bucket_bytes = int64_t(8) << 20, bool local_experts = false,
                  const model::grad::HeldSlots& include = {});
  // During the last micro-batch's backward (ModelGrad::on_grads_ready): starts the all-reduce
  // of every bucket whose gradients are now final and lets the started ones progress, so
  // communication runs under the rest of the backward.
  void grads_ready(int64_t group);
  // Finishes the step: starts what grads_ready() did not, waits for everything, so that grads =
  // sum over ranks of grads. Returns the seconds spent here: the communication not hidden.
  double sum();
  // Bytes one rank sends per step with a ring all-reduce: 2 (N-1)/N × the gradient bytes.
  double ring_bytes_per_step() const;
  int64_t gradient_floats() const { return layout_.floats(); }
  int64_t buckets() const { return int64_t(layout_.buckets().size()); }
  // Buckets started by grads_ready() in the last step (the rest started in sum()).
  int64_t started_early() const { return last_started_early_; }

 private:
  void start(size_t bucket);
  dist::Communicator& comm_;
  BucketLayout layout_;
  std::vector<float*> slot_data_;            // by param_slots index
  std::vector<std::vector<float>> buffers_;  // per bucket; empty: one tensor reduced in place
  std::vector<dist::Handle> pending_;
  size_t started_ = 0;
  int64_t started_early_ = 0, last_started_early_ = 0;
};

// Nested expert parallelism (--ep E below the rank count): the ranks at the same place in every
// expert group hold the same routed experts; sums those experts' gradients over them (comm),
// every tensor's all-reduce started before the first is waited for. Returns the seconds spent.
double sum_expert_grads(dist::Communicator& comm, const model::ModelConfig& c,
                        model::ModelWeights& grads);

// The step's numbers over ranks: `values` and `counts` (expert loads) summed, in rank order so
// every rank gets the same bits.
void reduce_step_numbers(dist::Communicator& comm, std::vector<double>& values,
                         std::vector<std::vector<int64_t>>& counts);

// Fails (internal) naming the ranks when the replicas' parameters differ: a cheap check, run at
// each save, that every rank took the same steps. local_experts: routed experts are each
// rank's own (expert parallel) and left out. Tensors this rank does not hold (size 0) add
// nothing, so pipeline ranks compare with the replicas of their own position.
void check_replicas_agree(dist::Communicator& comm, const model::ModelConfig& c,
                          model::ModelWeights& params, int64_t step, bool local_experts = false);

// Targets (next tokens in the same document) in a batch of `windows` windows of `S` tokens whose
// first `T` positions are trained: the normaliser of the one-process loss.
int64_t count_targets(const int32_t* docs, int64_t windows, int64_t S, int64_t T);

}  // namespace tern::train
