// Memory per GPU for training: weights, gradients, optimizer state and activations under a
// precision recipe and a parallel layout (TP x PP x EP, ZeRO stage). Owns the bytes-per-value
// tables and the activation estimate; its assumptions are listed in docs/accounting.md.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "account/hardware.h"
#include "account/model_figures.h"

namespace tern::account {

// Bytes per parameter and per stored activation value.
struct TrainRecipe {
  std::string precision;    // "bf16" or "fp8"
  double weight = 0;        // compute copy of the weights
  double gradient = 0;      // accumulated weight gradients
  double master = 0;        // FP32 master weights
  double moments = 0;       // AdamW m + v together
  double act_linear = 0;    // cached Linear inputs (FP8 tiles in the V3 recipe)
  double act_attn_out = 0;  // o_proj input (V3: E5M6, 1.5 bytes)
};
// bf16: mixed-precision AdamW as in ZeRO (2 + 2 + 4 + 8 = 16 B/param) [ZeRO §3.1].
// fp8: the DeepSeek-V3 recipe: FP8 weights, FP32 gradients and master weights, BF16 moments
// (1 + 4 + 4 + 4 = 13 B/param) [paper-V3 §3.3]. `moments` overrides ("fp32"/"bf16"; "" keeps).
TrainRecipe train_recipe(const std::string& precision, const std::string& moments = "");

struct Parallelism {
  int64_t gpus = 1;
  int64_t tp = 1;           // tensor parallel
  int64_t pp = 1;           // pipeline stages
  int64_t ep = 1;           // expert parallel (within the data-parallel group)
  int zero = 1;             // ZeRO stage: 0 none, 1 optimizer, 2 + gradients, 3 + weights
  int64_t micro_batch = 1;  // sequences per micro-batch
  int64_t dp() const { return gpus / (tp * pp); }
};
// Throws ErrorKind::request when the layout does not divide the GPUs or the experts.
void validate(const Parallelism& par, const ModelFigures& m);

struct TrainMemory {
  double dense_params_per_gpu = 0;   // non-expert parameters held by one GPU
  double expert_params_per_gpu = 0;  // routed-expert parameters held by one GPU
  double weights = 0, gradients = 0, optimizer = 0, activations = 0;
  double activation_bytes_per_token = 0;  // all layers (incl. MTP when trained), one token
  double logits = 0;                      // FP32 logits of one micro-batch
  double capacity = 0;                    // device memory
  double total() const { return weights + gradients + optimizer + activations; }
  bool fits() const { return total() <= capacity; }
};

// Activation bytes one token leaves for backward in one layer (MoE or dense FFN), with the V3
// memory savers: RMSNorms, MLA up-projections and SwiGLU outputs recomputed [paper-V3 §3.2.3].
double activation_bytes_per_token_layer(const ModelFigures& m, const TrainRecipe& r, bool moe);

TrainMemory train_memory_per_gpu(const ModelFigures& m, const Hardware& hw, const Parallelism& par,
                                 const TrainRecipe& r, int64_t seq, bool include_mtp);

nlohmann::json to_json(const TrainMemory& mem, const Parallelism& par, const TrainRecipe& r);

}  // namespace tern::account
