// ModelConfig -> ModelFigures (see plan_model.h). Parameter counts come from model/param_count
// so there is one formula for them in the tree; this file only copies and labels.
#include "apps/tern/plan_model.h"

#include "model/param_count.h"

namespace tern::app {

account::ModelFigures model_figures(const model::ModelConfig& c) {
  const model::ParamCounts p = model::count_parameters(c);
  account::ModelFigures m;
  m.name = c.source;
  m.params_total = p.total;
  m.params_activated = p.activated;
  m.params_embedding = p.embedding;
  m.params_head = c.tie_word_embeddings ? 0 : p.embedding;
  m.params_expert = p.expert;
  m.vocab_size = c.vocab_size;
  m.hidden_size = c.hidden_size;
  m.layers = c.num_hidden_layers;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const bool moe = c.n_routed_experts > 0 && c.is_moe_layer(l);
    (moe ? m.moe_layers : m.dense_layers) += 1;
  }
  m.intermediate_size = c.intermediate_size;
  m.mla = c.is_mla();
  m.heads = c.num_attention_heads;
  if (m.mla) {
    m.kv_heads = c.num_attention_heads;
    m.qk_head_dim = c.qk_head_dim();
    m.v_head_dim = c.v_head_dim;
    m.q_lora_rank = c.q_lora_rank;
    m.kv_lora_rank = c.kv_lora_rank;
    m.qk_rope_head_dim = c.qk_rope_head_dim;
  } else {
    m.kv_heads = c.num_key_value_heads;
    m.qk_head_dim = c.head_dim;
    m.v_head_dim = c.head_dim;
  }
  if (m.moe_layers > 0) {
    m.n_routed_experts = c.n_routed_experts;
    m.n_shared_experts = c.n_shared_experts;
    m.experts_per_token = c.num_experts_per_tok;
    m.moe_intermediate_size = c.moe_intermediate_size;
    m.params_routed_experts = m.moe_layers * c.n_routed_experts * p.expert;
  }
  m.mtp_layers = c.num_nextn_predict_layers;
  m.mtp_params_total = p.mtp_total;
  m.mtp_params_activated = p.mtp_activated;
  if (m.mtp_layers > 0 && c.n_routed_experts > 0 && c.is_moe_layer(c.num_hidden_layers))
    m.mtp_params_routed_experts = m.mtp_layers * c.n_routed_experts * p.expert;
  account::validate(m);
  return m;
}

account::ModelFigures model_figures_from_file(const std::string& path) {
  return model_figures(model::ModelConfig::from_file(path));
}

}  // namespace tern::app
