// ModelFigures: the architecture numbers the cost formulas need, as a plain struct.
// Owns nothing but data. It is filled from a ModelConfig by an adapter above this layer
// (apps/tern/plan_model.cpp), so account/ stays below model/ and links only tern_core.
#pragma once

#include <cstdint>
#include <string>

namespace tern::account {

struct ModelFigures {
  std::string name;  // where the figures came from (config path), for reports

  // Parameters (spec §14.1). `activated` excludes the input embedding (lookups are not
  // matmuls) and includes the output head; MTP modules are counted separately.
  int64_t params_total = 0;
  int64_t params_activated = 0;
  int64_t params_embedding = 0;       // vocab_size * hidden_size
  int64_t params_head = 0;            // untied lm_head (0 when tied)
  int64_t params_routed_experts = 0;  // all routed experts of the main model (EP-shardable)
  int64_t params_expert = 0;          // one routed expert (3 * hidden * moe_intermediate)

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t layers = 0;  // main-model layers (num_hidden_layers)
  int64_t dense_layers = 0;
  int64_t moe_layers = 0;
  int64_t intermediate_size = 0;  // dense SwiGLU width

  // Attention. MLA: qk_head_dim = qk_nope + qk_rope, the cache holds kv_lora_rank + qk_rope
  // values per layer. GQA/MHA: qk_head_dim = v_head_dim = head_dim, the cache holds K and V.
  bool mla = false;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t qk_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t q_lora_rank = 0;  // 0: no query compression
  int64_t kv_lora_rank = 0;
  int64_t qk_rope_head_dim = 0;

  // DeepSeekMoE (zeros for dense models).
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t experts_per_token = 0;
  int64_t moe_intermediate_size = 0;

  // Multi-token prediction modules, excluding their shared embedding and head (spec §8.1).
  int64_t mtp_layers = 0;
  int64_t mtp_params_total = 0;
  int64_t mtp_params_activated = 0;
  int64_t mtp_params_routed_experts = 0;

  // Cached values per token per layer: MLA latent + roped key, or K and V of every KV head.
  int64_t kv_values_per_token_per_layer() const {
    return mla ? kv_lora_rank + qk_rope_head_dim : 2 * kv_heads * qk_head_dim;
  }
  // What the same attention would cache with materialised per-head K and V.
  int64_t mha_kv_values_per_token_per_layer() const { return heads * (qk_head_dim + v_head_dim); }
  bool is_moe() const { return moe_layers > 0 && n_routed_experts > 0; }
};

// Throws ErrorKind::config naming the first figure that is missing or inconsistent.
void validate(const ModelFigures& m);

}  // namespace tern::account
