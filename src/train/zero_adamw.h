// ZeRO stage 1 (Rajbhandari et al.): AdamW whose moments are sharded over the data-parallel
// ranks. Each gradient bucket (train/gradient_buckets.h) is reduce-scattered instead of
// all-reduced, so rank r receives the summed gradient of its contiguous share of every bucket
// only; it updates that share of the parameters with its share of the moments, and the updated
// shares are all-gathered back into every rank's full parameters. Per rank the optimizer holds
// 2/N of the moments (plus a 1/N gradient shard) instead of two full copies, and sends the same
// bytes as a ring all-reduce: (N−1)/N × (gradients + parameters).
//
// The update is AdamW's own arithmetic (adamw_update) on the same summed gradients, so with the
// in-process backend's rank-order sums the parameters equal plain data parallelism's bit for
// bit; only the gradient norm's f64 summation order differs (partial sums per shard).
// Checkpoints keep the one-process format: rank 0 gathers the moments (into the gradient
// buffers, which a save does not need, plus one transient copy), so a run saved at N ranks
// resumes at any M, with or without ZeRO.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "model/config.h"
#include "model/weights.h"
#include "train/adamw.h"
#include "train/gradient_buckets.h"

namespace tern::train {

class ZeroAdamW {
 public:
  // local_experts (expert parallel): the routed experts stay out of the buckets — each rank's
  // are its own, updated by another optimizer. include: only the tensors it accepts (pipeline
  // stages: those comm's ranks hold together; the rest another optimizer updates); empty: all.
  ZeroAdamW(dist::Communicator& comm, const model::ModelConfig& c, model::ModelWeights& params,
            model::ModelWeights& grads, AdamWConfig cfg, int64_t bucket_bytes = int64_t(8) << 20,
            bool local_experts = false, const model::grad::HeldSlots& include = {});

  // During the last micro-batch's backward (ModelGrad::on_grads_ready): starts the
  // reduce-scatter of every bucket whose gradients are final.
  void grads_ready(int64_t group);
  // Starts the rest and waits: this rank's gradient shard is the sum over ranks. Returns the
  // seconds spent here (the communication the backward did not hide).
  double reduce();
  // ||g||₂ of the summed gradient over every trainable slot: per-shard sums of squares combined
  // in rank order (a collective; the same value on every rank).
  double grad_norm();
  // Clips by `norm`, updates this rank's share at rate lr, increments the step count, and
  // all-gathers the updated parameters (bucket by bucket, each gather started as soon as its
  // share is updated).
  void step(double lr, double norm, ThreadPool& pool);

  // Zeroes every gradient (before the next accumulation).
  void zero_grad();
  bool lead() const { return comm_.rank() == 0; }

  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  const AdamWConfig& config() const { return cfg_; }

  // Collective. Rank 0 gets the full moments in m and v (f32 weights made for c; every slot
  // written, untrained ones zero — with an include filter, only the slots it accepts); the
  // other ranks pass nullptr.
  void gather_moments(model::ModelWeights* m, model::ModelWeights* v);
  // This rank's shares from full moments (every rank holds them: a resumed checkpoint).
  void take_moments(model::ModelWeights& m, model::ModelWeights& v);

  int64_t owned_floats() const { return owned_; }
  int64_t gradient_floats() const { return layout_.floats(); }
  int64_t buckets() const { return int64_t(layout_.buckets().size()); }
  int64_t started_early() const { return last_started_early_; }
  // Bytes one rank sends per step: reduce-scatter then all-gather, (N−1)/N × 4 bytes each.
  double bytes_per_step() const;

 private:
  // A piece of this rank's share: `size` floats of slot `slot` from `offset`, stored at
  // `shard` in the shard buffers.
  struct Run {
    int64_t slot, offset, size, shard;
  };
  void start_reduce(size_t bucket);
  // Each rank's count in bucket b, and where this rank's share starts in its shard buffers.
  std::vector<int64_t> counts(size_t b) const;

  dist::Communicator& comm_;
  model::ModelConfig c_;
  AdamWConfig cfg_;
  model::grad::HeldSlots include_;
  BucketLayout layout_;
  std::vector<model::grad::ParamSlot> params_, grads_;
  std::vector<std::vector<float>> buffers_;  // per bucket of several tensors: packing space
  std::vector<std::vector<Run>> runs_;       // per bucket: this rank's share
  std::vector<int64_t> shard_at_;            // per bucket: its share's start in the shards
  std::vector<float> g_, m_, v_;             // this rank's share: summed gradient, moments
  std::vector<dist::Handle> pending_;
  size_t started_ = 0;
  int64_t owned_ = 0, t_ = 0, started_early_ = 0, last_started_early_ = 0;
};

}  // namespace tern::train
