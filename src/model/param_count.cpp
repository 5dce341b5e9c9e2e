#include "model/param_count.h"

namespace tern::model {

ParamCounts count_parameters(const ModelConfig& c) {
  ParamCounts p;
  const int64_t d = c.hidden_size, V = c.vocab_size, H = c.num_attention_heads;
  const int64_t L = c.num_hidden_layers;
  p.embedding = V * d;
  const int64_t head = c.tie_word_embeddings ? 0 : V * d;
  const int64_t norms = 2 * d;
  p.dense_mlp = 3 * d * c.intermediate_size;

  if (c.is_mla()) {
    const int64_t dq = c.qk_head_dim(), rkv = c.kv_lora_rank, dr = c.qk_rope_head_dim;
    const int64_t rq = c.q_lora_rank;
    p.attention_per_layer = (rq > 0 ? d * rq + rq + rq * H * dq : d * H * dq) + d * (rkv + dr) +
                            rkv + rkv * H * (c.qk_nope_head_dim + c.v_head_dim) +
                            H * c.v_head_dim * d;
    if (c.n_routed_experts > 0) {
      const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
      p.expert = 3 * d * c.moe_intermediate_size;
      const int64_t gate = E * d + (c.has_correction_bias ? E : 0);
      const int64_t shared = 3 * d * c.n_shared_experts * c.moe_intermediate_size;
      p.moe_total_per_layer = gate + E * p.expert + shared;
      p.moe_active_per_layer = gate + K * p.expert + shared;
    }
  } else {
    const int64_t hd = c.head_dim, Hkv = c.num_key_value_heads;
    p.attention_per_layer = d * H * hd + 2 * d * Hkv * hd + H * hd * d;
    if (c.attention_bias) p.attention_per_layer += H * hd + 2 * Hkv * hd;
  }

  int64_t total = p.embedding + head + d, active = head + d;
  for (int64_t l = 0; l < L; ++l) {
    const bool moe = c.is_moe_layer(l);
    total += p.attention_per_layer + norms + (moe ? p.moe_total_per_layer : p.dense_mlp);
    active += p.attention_per_layer + norms + (moe ? p.moe_active_per_layer : p.dense_mlp);
  }
  p.total = total;
  p.activated = active;

  if (c.num_nextn_predict_layers > 0) {
    // Each MTP module: a full block at layer index L, plus enorm, hnorm, eh_proj [d, 2d] and
    // shared_head.norm; its embed_tokens / shared_head.head duplicate the main ones (spec §8.1).
    const bool moe = c.is_moe_layer(L);
    const int64_t extra = 3 * d + 2 * d * d;
    p.mtp_total = c.num_nextn_predict_layers * (p.attention_per_layer + norms + extra +
                                                (moe ? p.moe_total_per_layer : p.dense_mlp));
    p.mtp_activated = c.num_nextn_predict_layers * (p.attention_per_layer + norms + extra +
                                                    (moe ? p.moe_active_per_layer : p.dense_mlp));
  }
  return p;
}

int64_t kv_cache_bytes_per_token(const ModelConfig& c, int64_t bytes_per_value) {
  if (c.is_mla())
    return c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * bytes_per_value;
  return c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * bytes_per_value;
}

int64_t mha_equivalent_kv_bytes_per_token(const ModelConfig& c, int64_t bytes_per_value) {
  const int64_t k = c.is_mla() ? c.qk_head_dim() : c.head_dim;
  const int64_t v = c.is_mla() ? c.v_head_dim : c.head_dim;
  return c.num_hidden_layers * c.num_attention_heads * (k + v) * bytes_per_value;
}

}  // namespace tern::model
