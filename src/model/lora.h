// LoRA adapters (Hu et al. 2021) over a frozen base: which Linears get one (--lora-targets), how
// they start (A uniform in ±1/sqrt(in_features) as PEFT's Kaiming init gives, B = 0, so training
// starts from the base model exactly), where their gradients and AdamW moments live, and wiring
// them onto ModelWeights (Linear::lora) for the training forward and backward. Saving, loading
// and merging are model/lora_peft.h and model/lora_merge.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/weights.h"

namespace tern::model {

struct LoraOptions {
  int64_t rank = 0;     // 0: no adapters (full fine-tuning)
  double alpha = 0;     // lora_alpha; 0: 2 × rank. The update is scaled by alpha / rank.
  std::vector<std::string> targets = {"q", "kv", "o"};
};

// Parses --lora-targets: comma-separated groups (q, kv, o, attn = q,kv,o, mlp = the dense
// layers' MLPs, experts = routed experts, shared = shared experts, all) or module names as PEFT
// writes them (q_b_proj, down_proj, ...). Fails (request) naming an unknown entry.
std::vector<std::string> parse_lora_targets(const std::string& csv);

// Whether the Linear named `module` ("model.layers.3.mlp.experts.5.up_proj", no ".weight")
// takes an adapter under `targets`. Embeddings, the LM head, routers and MTP modules never do.
bool lora_targets_module(const std::vector<std::string>& targets, const std::string& module,
                         int64_t num_hidden_layers);

class LoraAdapters {
 public:
  struct Module {
    std::string name;  // the base Linear's name without ".weight"
    model::LoraPair pair;
    Tensor grad_a, grad_b, m_a, m_b, v_a, v_b;  // training only (allocate_training)
  };

  // Fresh adapters on every targeted Linear of `base` (A from `seed`, B = 0). Fails (request)
  // when no Linear matches.
  static LoraAdapters create(const model::ModelConfig& c, model::ModelWeights& base,
                             const LoraOptions& o, uint64_t seed);
  // Adapters with given tensors (a loaded PEFT file): modules in the base's order.
  LoraAdapters(int64_t rank, double alpha, std::vector<std::string> targets,
               std::vector<std::unique_ptr<Module>> modules);

  // Gradient and AdamW-moment tensors (zero), and the gradient pointers on every pair.
  void allocate_training();
  // Points the Linear::lora of every adapted slot of `w` (and of `grads`, when given) at its
  // pair. Fails (config) when an adapter's module or shape is not in the base.
  void attach(const model::ModelConfig& c, model::ModelWeights& w,
              model::ModelWeights* grads) const;

  // Slots for AdamW and checkpoints: "<module>.lora_A.weight" / "<module>.lora_B.weight" over
  // the parameters, gradients and the two moments (after allocate_training).
  enum class Part { param, grad, m, v };
  std::vector<model::grad::ParamSlot> slots(Part part) const;

  int64_t rank() const { return rank_; }
  double alpha() const { return alpha_; }
  const std::vector<std::string>& targets() const { return targets_; }
  const std::vector<std::unique_ptr<Module>>& modules() const { return modules_; }
  int64_t parameter_count() const;

 private:
  int64_t rank_ = 0;
  double alpha_ = 0;
  std::vector<std::string> targets_;
  // unique_ptr: Linear::lora points at the pairs, so they must not move.
  std::vector<std::unique_ptr<Module>> modules_;
};

// ModelWeights of `c` whose Linears hold no data (frozen: their gradient is not wanted) but
// keep their shapes, and whose f32 vectors are zero-filled accumulators the backward may write.
model::ModelWeights make_frozen_grads(const model::ModelConfig& c);

}  // namespace tern::model
