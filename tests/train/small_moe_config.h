// A DeepSeek-V3 in miniature for training tests: two layers (one dense, one MoE with 8 routed
// and 1 shared expert), MLA with compressed queries, one MTP module, vocabulary 256. dense: every
// layer a dense MLP and no MTP (no routing decisions, which low precision may flip).
#pragma once

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace tern::test {

inline model::ModelConfig small_moe_config(bool dense = false) {
  nlohmann::json j = {{"architectures", {"DeepseekV3ForCausalLM"}},
                      {"model_type", "deepseek_v3"},
                      {"hidden_size", 128},
                      {"intermediate_size", 192},
                      {"moe_intermediate_size", 64},
                      {"num_hidden_layers", 2},
                      {"first_k_dense_replace", 1},
                      {"moe_layer_freq", 1},
                      {"num_attention_heads", 2},
                      {"num_key_value_heads", 2},
                      {"q_lora_rank", 64},
                      {"kv_lora_rank", 32},
                      {"qk_nope_head_dim", 16},
                      {"qk_rope_head_dim", 8},
                      {"v_head_dim", 16},
                      {"n_routed_experts", 8},
                      {"n_shared_experts", 1},
                      {"num_experts_per_tok", 2},
                      {"n_group", 2},
                      {"topk_group", 1},
                      {"routed_scaling_factor", 2.5},
                      {"scoring_func", "sigmoid"},
                      {"topk_method", "noaux_tc"},
                      {"norm_topk_prob", true},
                      {"num_nextn_predict_layers", 1},
                      {"rms_norm_eps", 1e-6},
                      {"rope_theta", 10000},
                      {"max_position_embeddings", 128},
                      {"vocab_size", 256},
                      {"tie_word_embeddings", false}};
  if (dense) j["first_k_dense_replace"] = 2, j["num_nextn_predict_layers"] = 0;
  return model::ModelConfig::from_json(j, "test");
}

}  // namespace tern::test
