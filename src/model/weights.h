// ModelWeights: every tensor of a model, as typed views that stay in their stored dtype
// (bf16, fp8 + block scales, q8_0, ...) except small vectors (norms, biases), which are
// converted to f32 once at load. One visitor (visit_weights) enumerates every slot with its
// Hugging Face name and expected shape; loading, saving, init and optimizers all use it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/lowp_gemm.h"
#include "kernels/weight.h"
#include "model/config.h"

namespace tern::model {

// A low-rank adapter on a Linear (LoRA): the layer computes y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ with
// the base W frozen. Training forwards and backwards read it (model/grad/linear_grad.h); the
// inference kernels do not, so serving merges it first (model/lora_merge.h).
struct LoraPair {
  Tensor a;  // f32 [rank, cols]
  Tensor b;  // f32 [rows, rank]
  float scale = 1.0f;  // lora_alpha / rank (or / sqrt(rank) with rsLoRA)
  // Where the backward accumulates ∂/∂A and ∂/∂B (same shapes); null: no gradient wanted.
  float* grad_a = nullptr;
  float* grad_b = nullptr;
  int64_t rank() const { return a.empty() ? 0 : a.shape()[0]; }
};

// A linear layer y = x·Wᵀ (+ b). `data` / `scale` keep the storage alive; `view` is what
// kernels read. `bias` is f32 [rows] or empty.
struct Linear {
  kernels::WeightView view;
  Tensor data;
  Tensor scale;  // fp8 only: f32 [ceil(rows/128), ceil(cols/128)]
  Tensor bias;
  // Training only: how GEMMs with this matrix round their inputs (--precision); null = f32.
  // Set on the parameters and on their gradients by the trainer; inference ignores it.
  const kernels::LowpSpec* train_lowp = nullptr;
  // Training only: a LoRA adapter, set on a frozen base's Linear and on its gradient slot (which
  // then holds no data of its own); null = none.
  const LoraPair* lora = nullptr;
  bool present() const { return !data.empty(); }
};

// An f32 vector (RMSNorm weight, router correction bias).
struct Vector {
  Tensor data;  // f32 [n]
  const float* ptr() const { return data.data_as<const float>(); }
  bool present() const { return !data.empty(); }
};

struct MlaWeights {
  Linear q_a_proj, q_b_proj, q_proj;  // q_a/q_b when q_lora_rank > 0, else q_proj
  Vector q_a_layernorm;
  Linear kv_a_proj_with_mqa;  // [kv_lora_rank + qk_rope_head_dim, d]
  Vector kv_a_layernorm;
  Linear kv_b_proj;  // [H * (dn + dv), kv_lora_rank]; empty when the file splits it (below)
  Linear o_proj;     // [d, H * dv]
  // GGUFs from newer converters store kv_b_proj split (spec §12.2): attn_k_b = W_UKᵀ
  // [H, kv_lora_rank, qk_nope_head_dim] and attn_v_b = W_UV [H, v_head_dim, kv_lora_rank].
  Tensor k_b, v_b;

  // Per-head weights the attention reads, in the checkpoint's dtype (mla_heads.cpp), built once
  // at load. Absorbed form (spec §6.3): uk_t[h] = W_UKᵀ_h [kv_lora_rank, qk_nope_head_dim], so
  // q_abs = W_UKᵀ_h · q_nope is a plain matmul, and uv[h] = W_UV_h [v_head_dim, kv_lora_rank].
  // Naive form: uk[h] = W_UK_h [qk_nope_head_dim, kv_lora_rank] (empty if not loaded).
  std::vector<kernels::WeightView> uk_t, uv, uk;
  // Storage of derived transposes (empty where the views point into file tensors).
  Tensor uk_t_data, uk_t_scales, uk_data;
};

struct GqaWeights {
  Linear q_proj, k_proj, v_proj, o_proj;  // q/k/v may carry biases (Qwen2)
};

struct MlpWeights {
  Linear gate_proj, up_proj, down_proj;
};

struct MoeWeights {
  Linear gate;                     // router [n_routed_experts, d]
  Vector e_score_correction_bias;  // [n_routed_experts] (noaux_tc only)
  std::vector<MlpWeights> experts;
  MlpWeights shared_experts;  // one MLP of width n_shared_experts * moe_intermediate_size
};

struct LayerWeights {
  Vector input_layernorm, post_attention_layernorm;
  MlaWeights mla;
  GqaWeights gqa;
  bool is_moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights moe;
};

// A multi-token-prediction module (spec §8), stored as layer num_hidden_layers + k.
struct MtpWeights {
  Linear embed_tokens;  // [V, d]
  Vector enorm, hnorm;
  Linear eh_proj;  // [d, 2d]: columns 0..d-1 take enorm(emb), d..2d-1 take hnorm(h)
  LayerWeights block;
  Vector shared_head_norm;
  Linear shared_head_head;  // [V, d]
};

struct ModelWeights {
  Linear embed_tokens;  // [V, d]
  std::vector<LayerWeights> layers;
  Vector norm;
  Linear lm_head;  // [V, d]; aliases embed_tokens when tie_word_embeddings
  std::vector<MtpWeights> mtp;
};

enum class SlotKind { linear, vector };

// One tensor slot as the visitor sees it.
struct WeightSlot {
  std::string name;  // Hugging Face name, e.g. "model.layers.3.self_attn.kv_b_proj.weight"
  Shape shape;       // expected shape, torch order
  SlotKind kind;
  Linear* linear = nullptr;  // kind == linear
  Vector* vector = nullptr;  // kind == vector
  bool has_bias = false;     // linear with a "<prefix>.bias" tensor (Qwen2 q/k/v)
  bool optional = false;     // may be absent (e.g. MTP modules when not loading them)
};

// Sizes `w` for `c` (layers, experts, MTP modules when include_mtp) and calls fn for every slot,
// in checkpoint order.
void visit_weights(const ModelConfig& c, ModelWeights& w, bool include_mtp,
                   const std::function<void(WeightSlot&)>& fn);

}  // namespace tern::model
