// The whole model for training (DeepSeek-V3/V2, and the dense Qwen2/Llama students): embedding, the
// blocks, final norm, LM head with cross-entropy, the MTP modules (spec §8.2) and the balance loss,
// with one call that runs the forward and the backward of a micro-batch (docs/training.md is the
// contract). Owns the saved activations, sized on the first step and reused after. Does not own
// weights, gradients (the caller's ModelWeights of f32 tensors) or the optimizer.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/block_grad.h"
#include "model/grad/loss_grad.h"
#include "model/grad/rope_grad.h"
#include "model/weights.h"

namespace tern::model::grad {

// Tokens in one training window: T inputs plus the targets beyond them, max(1, D) for D MTP
// modules (docs/training.md, "A batch").
int64_t window_tokens(const ModelConfig& c, int64_t T);

// B windows of S = window_tokens(c, T) tokens with their document ids.
struct TrainBatch {
  int64_t B = 0, T = 0;
  const int32_t* tokens = nullptr;  // [B, S]
  const int32_t* docs = nullptr;    // [B, S]
};

struct LossWeights {
  float mtp_lambda = 0.3f;      // λ
  float balance_alpha = 1e-4f;  // α
  float scale = 1.0f;           // 1 / gradient-accumulation count
  // > 0: the cross-entropy terms are normalised by this many targets instead of this batch's
  // (data parallel: the global batch's count, so that summing the ranks' gradients gives the
  // one-process gradient exactly, whatever each slice's share of document boundaries).
  double targets = 0;
};

struct StepResult {
  double loss = 0;     // L (docs/training.md), this micro-batch, unscaled by `scale`
  double main = 0;     // L_main
  double mtp = 0;      // Σ_k L_mtp_k
  double balance = 0;  // Σ over MoE layers of the balance value (before α)
  int64_t main_targets = 0;
  // Tokens routed to each expert, per MoE layer (main layers in order, then MTP blocks).
  std::vector<std::vector<int64_t>> expert_counts;
};

class ModelGrad {
 public:
  // For batches of B windows of T tokens; fails (request) for a --seq beyond the context.
  // recompute: keep only each layer's input and rerun its forward during the backward
  // (activation memory of one layer instead of all, for one more forward per step).
  ModelGrad(const ModelConfig& c, int64_t B, int64_t T, bool recompute = false);

  // Forward and backward of one micro-batch: gradients accumulate into g (same layout as w,
  // f32); w.mtp's embed_tokens / shared_head_head are ignored (the main ones are shared).
  StepResult step(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                  const LossWeights& lw, ThreadPool& pool);

  // Forward only: the loss terms (no gradients), e.g. for validation.
  StepResult evaluate(const ModelWeights& w, const TrainBatch& batch, const LossWeights& lw,
                      ThreadPool& pool);

  // Policy-gradient objectives (GRPO): the main model only, no MTP modules; the head's
  // gradient on row n = b·T + i (which predicts tokens[b, i+1]) is fn(n, log p) times that of
  // its cross-entropy, so the objective's derivative with respect to log p enters per row
  // (loss_grad.h). lw.balance_alpha and lw.scale apply as in step(); lw.mtp_lambda does not.
  // StepResult::main is the mean cross-entropy of the targets.
  StepResult step_weighted(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                           const TargetWeight& fn, const LossWeights& lw, ThreadPool& pool);
  // Forward only: fn sees every target's log-probability (its return value is unused).
  StepResult evaluate_weighted(const ModelWeights& w, const TrainBatch& batch,
                               const TargetWeight& fn, ThreadPool& pool);

  // Soft targets (logit distillation): the main model only; row n's loss and logit gradient
  // are loss(n, logits) (loss_grad.h) for rows with a target. StepResult::main is their sum
  // over the targets' count; lw.balance_alpha and lw.scale apply as in step().
  StepResult step_row_loss(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                           const RowLoss& loss, const LossWeights& lw, ThreadPool& pool);

  // Called during a backward as groups of gradients become final, in this order: each MTP
  // module (its layer index, last module first), kHeadAndNorm (the LM head and final norm),
  // each layer from the last down, kEmbedding (the embedding, last). Data parallelism starts
  // reducing a group while the backward goes on (train/data_parallel.h). Null: none.
  static constexpr int64_t kHeadAndNorm = -1, kEmbedding = -2;
  using GradsReady = std::function<void(int64_t group)>;
  void on_grads_ready(GradsReady fn) { grads_ready_ = std::move(fn); }

  // Expert parallel (moe_grad.h's MoeContext::ep): this rank runs only its block of routed
  // experts, every forward and backward then a collective over ep.comm's ranks.
  void set_expert_parallel(ExpertParallel ep) { ep_ = ep; }

  // Pipeline stages (train/pipeline_runner.h): run only layers [first, end), with the embedding
  // when first == 0 and the final norm, head, loss and MTP modules when end is the layer count.
  // Default: the whole model. One object holds one micro-batch's activations.
  void set_stage(int64_t first, int64_t end);
  // A stage's forward of one micro-batch. The last stage computes the loss here, so the head's
  // gradient accumulates into g already. h_in: the previous stage's output [N, d] (the first
  // stage embeds batch.tokens instead); h_out: receives this stage's output (not the last).
  // StepResult holds this stage's share: the loss terms on the last stage, the balance values
  // and expert counts of its own MoE layers (the other rows zero). row_loss: the last stage's
  // loss per row instead of the cross-entropy, as step_row_loss (no MTP term then).
  StepResult forward_stage(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                           const LossWeights& lw, const float* h_in, float* h_out, ThreadPool& pool,
                           const RowLoss* row_loss = nullptr);
  // The same micro-batch's backward: dh_out = dL/d(this stage's output) from the next stage
  // (the last stage has its loss); dh_in receives dL/d(its input) (not the first stage).
  void backward_stage(const ModelWeights& w, ModelWeights& g, const float* dh_out, float* dh_in,
                      ThreadPool& pool);

 private:
  struct MtpSaved {
    std::vector<int32_t> ids, target;  // [N]
    Buffer e, e_rstd, h_rstd, cat, z, z_out, hk, hk_rstd, dhk;
    BlockSaved block;
  };
  // What the forward leaves for the backward of the same micro-batch.
  struct Pass {
    double n_main = 1;
    float per_target = 0;
    int64_t D = 0;  // MTP modules run
    int64_t first = 0, end = 0;
    BlockContext bctx;
  };
  StepResult run(const ModelWeights& w, ModelWeights* g, const TrainBatch& batch,
                 const LossWeights& lw, ThreadPool& pool, const TargetWeight* fn = nullptr,
                 const RowLoss* row_loss = nullptr);
  StepResult forward(const ModelWeights& w, ModelWeights* g, const TrainBatch& batch,
                     const LossWeights& lw, ThreadPool& pool, const TargetWeight* fn,
                     const RowLoss* row_loss, const float* h_in, float* h_out);
  void backward(const ModelWeights& w, ModelWeights& g, ThreadPool& pool, const float* dh_out,
                float* dh_in);
  void make_targets(const TrainBatch& batch);
  BlockSaved& block_saved(int64_t layer);

  ModelConfig c_;
  int64_t B_, T_, D_;
  bool recompute_;
  Buffer layer_inputs_, recompute_h_;  // [L, N, d] and [N, d] (recompute only)
  RopeAngles rope_;
  std::vector<int32_t> ids_, target_;  // [N]
  std::vector<size_t> moe_row_;        // [L + D]: each MoE layer's row of expert_counts
  Buffer h_, h_final_, final_rstd_, hn_, dhn_, dh_, head_scratch_;
  std::vector<BlockSaved> blocks_;
  std::vector<MtpSaved> mtp_;
  GradsReady grads_ready_;
  ExpertParallel ep_;
  int64_t first_layer_ = 0, end_layer_ = -1;  // -1: the layer count
  Pass pass_;
};

}  // namespace tern::model::grad
