// What a training run updates, behind one interface for `tern train`, `sft`, `distill` and
// `grpo`: every weight as f32 master weights (full training), or LoRA adapters over a frozen base
// that stays in its stored dtype — bf16, fp8 with block scales, int8/int4 groups (QLoRA-style) —
// so fine-tuning needs memory for the base as stored plus the adapters' weights, gradients and
// AdamW moments. Checkpoints differ accordingly: a full model directory, or a PEFT adapter
// directory (model/lora_peft.h) with the adapters' moments.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/weights.h"
#include "train/adamw.h"
#include "train/checkpoint_io.h"
#include "train/stage_grads.h"
#include "train/stage_placement.h"
#include "train/zero_adamw.h"

namespace tern::train {

class Trainable {
 public:
  // f32 parameters (zero: the caller initialises or loads them), gradients and AdamW. With
  // expert parallelism (ep active) each routed expert lives on its owner rank only (weights,
  // gradients, moments); grad_norm(), save() and resume() are then collectives.
  static std::unique_ptr<Trainable> full(const model::ModelConfig& c, const AdamWConfig& cfg,
                                         const model::ExpertParallel* ep = nullptr);
  // Full training with ZeRO-1 over comm's ranks (train/zero_adamw.h): the AdamW moments are
  // sharded, never allocated whole. save() and resume() are then collectives.
  // With expert parallelism too (ep active), the routed experts live on their owners only and
  // a local AdamW updates each rank's own; ZeRO shards the replicated rest.
  static std::unique_ptr<Trainable> full_sharded(const model::ModelConfig& c,
                                                 const AdamWConfig& cfg, dist::Communicator& comm,
                                                 int64_t bucket_bytes,
                                                 const model::ExpertParallel* ep = nullptr);
  // Pipeline parallel with stage-local weights: a rank holds only the tensors of its stages
  // (weights, gradients, moments); grad_norm(), save(), resume() and gather_serving_weights()
  // are then collectives over the pipeline (and the expert group, and with ZeRO the holder
  // groups). Everything the layout points to must outlive the Trainable.
  struct StageLayout {
    dist::Communicator* pipeline = nullptr;  // the pipeline's ranks, by position
    const StagePlacement* stages = nullptr;
    // Expert groups inside the stages: this rank's among its position's replicas; only its
    // block of the held layers' routed experts is allocated. Null or inactive: none.
    const model::ExpertParallel* ep = nullptr;
    // ZeRO-1: the moments of each holder group's tensors (stage_grads.h) sharded over the group,
    // which then reduce-scatters their gradients itself (reduce_stage_grads()); a collective
    // over zero_world (the job) here. Null: plain AdamW on the summed gradients.
    dist::Communicator* zero_world = nullptr;
    int64_t bucket_bytes = int64_t(8) << 20;
    // Whether this rank's expert group is the one whose pipelines gather the model for the lead
    // (the first; without expert groups, the first pipeline).
    bool gathers = true;
  };
  static std::unique_ptr<Trainable> stage_local(const model::ModelConfig& c, const AdamWConfig& cfg,
                                                const StageLayout& layout);
  // Stage-local ZeRO's optimizers (one per holder group of this rank), in the groups' order.
  const std::vector<std::unique_ptr<ZeroAdamW>>& stage_zeros() const { return stage_zeros_; }
  // Stage-local ZeRO: reduce-scatters every holder group's gradients (in the groups' global
  // order); returns the seconds spent. Nothing to do otherwise.
  double reduce_stage_grads();
  // Fresh adapters (o.rank > 0) on the model directory base_dir, loaded as stored.
  static std::unique_ptr<Trainable> lora(const model::ModelConfig& c, const std::string& base_dir,
                                         const model::LoraOptions& o, uint64_t seed,
                                         const AdamWConfig& cfg);

  bool is_lora() const { return adapters_ != nullptr; }
  const model::LoraAdapters* adapters() const { return adapters_.get(); }
  // What the training forward reads (LoRA: the base with the adapters attached) and where the
  // backward accumulates (LoRA: the adapters' gradients, plus unused vector accumulators).
  model::ModelWeights& params() { return params_; }
  model::ModelWeights& grads() { return grads_; }
  // The unsharded optimizer (not with full_sharded).
  AdamW& adam();
  // The sharded one, or nullptr.
  ZeroAdamW* zero() { return zero_.get(); }
  // Whichever optimizer this run has: the global gradient norm (a collective with ZeRO), one
  // update, the update count.
  double grad_norm();
  // zero_grads: the gradients are left zero, fused into the update where the optimizer can
  // (the unsharded one), so the next zero_grad() has nothing to do.
  void step(double lr, double norm, ThreadPool& pool, bool zero_grads = false);
  int64_t optimizer_steps() const;
  // The base without adapters (LoRA): GRPO's frozen reference for free. Full: not available.
  model::ModelWeights base_weights(const model::ModelConfig& c) const;
  // How many values the optimizer trains.
  int64_t trained_parameters(const model::ModelConfig& c);

  void zero_grad();
  // RUN_DIR/checkpoint-STEP, atomically: the model directory (full) or the adapter directory.
  // With ZeRO every rank calls it (the moments are gathered); rank 0 writes and returns the
  // path, the others return "".
  std::string save(const std::string& run_dir, int64_t step, const model::ModelConfig& c,
                   const CheckpointFiles& files);
  // Nested expert groups: a rank of a group other than the one that writes takes part in the
  // collectives of save() that span every rank (ZeRO's gather of the moments) and writes
  // nothing.
  void join_save();
  // Parameters and moments from checkpoint `dir`, the update count from `state`; returns its
  // step.
  int64_t resume(const std::string& dir, const nlohmann::json& state, const model::ModelConfig& c);

  // Weights the inference engine can run (samples, rollouts): the parameters themselves (full,
  // sharing their tensors) or the base with the adapters merged (LoRA), which refresh_serving
  // brings up to date after an update.
  model::ModelWeights serving_weights(const model::ModelConfig& c) const;
  // Expert or pipeline parallel: the whole model on rank 0 (a collective over the expert group
  // or the pipeline; its tensors gathered), empty weights elsewhere. Otherwise
  // serving_weights().
  model::ModelWeights gather_serving_weights(const model::ModelConfig& c);
  const model::ExpertParallel& expert_parallel() const { return ep_; }
  void refresh_serving(const model::ModelConfig& c, model::ModelWeights& serving) const;

 private:
  Trainable() = default;
  // Zero f32 parameters and gradients (with ep active, of this rank's experts only).
  static std::unique_ptr<Trainable> f32_weights(const model::ModelConfig& c,
                                                const model::ExpertParallel* ep);
  // The expert placement for make_f32_weights and the loaders: null unless expert parallel.
  const model::ExpertParallel* placement() const { return ep_.active() ? &ep_ : nullptr; }
  // The tensors this rank holds (pipeline stages): empty when it holds all.
  model::grad::HeldSlots held() const;
  // Stage-local: gathers `local` (this rank's tensors in the model's layout) to the pipeline's
  // rank 0 — with expert groups, first each position's experts to its group's rank 0, whose
  // pipeline then gathers (the others return empty weights).
  model::ModelWeights gather_stages(const model::ModelConfig& c, model::ModelWeights& local);
  model::ModelWeights params_, grads_;
  std::unique_ptr<AdamW> adam_;
  std::unique_ptr<ZeroAdamW> zero_;
  model::ExpertParallel ep_;
  dist::Communicator* pipeline_ = nullptr;  // stage-local: the pipeline's ranks
  const StagePlacement* stages_ = nullptr;
  bool gathers_ = true;
  HolderGroups holder_groups_;  // stage-local ZeRO
  std::vector<std::unique_ptr<ZeroAdamW>> stage_zeros_;
  // ZeRO with expert parallelism: AdamW over this rank's routed experts, its moments' storage.
  std::unique_ptr<AdamW> expert_adam_;
  std::vector<std::vector<float>> expert_moments_;
  // Copies this rank's experts' moments between expert_adam_ and weights of the local layout
  // (to_weights: into m and v; else from them).
  void copy_expert_moments(const model::ModelConfig& c, model::ModelWeights& m,
                           model::ModelWeights& v, bool to_weights);
  std::unique_ptr<model::LoraAdapters> adapters_;
  std::string base_dir_;
  std::vector<std::pair<float*, int64_t>> frozen_vectors_;  // LoRA: grads_' vector slots
  // The last step(zero_grads) left the optimizer's gradients zero and nothing has written them
  // since (save and resume use their storage for moments and clear it).
  bool grads_zeroed_ = false;
};

}  // namespace tern::train
