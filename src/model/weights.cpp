#include "model/weights.h"

namespace tern::model {
namespace {

struct Visitor {
  const ModelConfig& c;
  const std::function<void(WeightSlot&)>& fn;
  bool optional = false;

  void linear(const std::string& name, Linear& l, Shape shape, bool bias = false) {
    WeightSlot s{name + ".weight", std::move(shape), SlotKind::linear, &l, nullptr, bias, optional};
    fn(s);
  }
  void vec(const std::string& name, Vector& v, int64_t n) {
    WeightSlot s{name, {n}, SlotKind::vector, nullptr, &v, false, optional};
    fn(s);
  }
  void mlp(const std::string& p, MlpWeights& m, int64_t width) {
    const int64_t d = c.hidden_size;
    linear(p + ".gate_proj", m.gate_proj, {width, d});
    linear(p + ".up_proj", m.up_proj, {width, d});
    linear(p + ".down_proj", m.down_proj, {d, width});
  }

  void attention(const std::string& p, LayerWeights& L) {
    const int64_t d = c.hidden_size, H = c.num_attention_heads;
    if (c.is_mla()) {
      MlaWeights& a = L.mla;
      const int64_t dq = c.qk_head_dim(), rkv = c.kv_lora_rank;
      if (c.q_lora_rank > 0) {
        linear(p + ".q_a_proj", a.q_a_proj, {c.q_lora_rank, d});
        vec(p + ".q_a_layernorm.weight", a.q_a_layernorm, c.q_lora_rank);
        linear(p + ".q_b_proj", a.q_b_proj, {H * dq, c.q_lora_rank});
      } else {
        linear(p + ".q_proj", a.q_proj, {H * dq, d});
      }
      linear(p + ".kv_a_proj_with_mqa", a.kv_a_proj_with_mqa, {rkv + c.qk_rope_head_dim, d});
      vec(p + ".kv_a_layernorm.weight", a.kv_a_layernorm, rkv);
      linear(p + ".kv_b_proj", a.kv_b_proj, {H * (c.qk_nope_head_dim + c.v_head_dim), rkv});
      linear(p + ".o_proj", a.o_proj, {d, H * c.v_head_dim});
    } else {
      GqaWeights& g = L.gqa;
      const int64_t hd = c.head_dim, kv = c.num_key_value_heads * hd;
      linear(p + ".q_proj", g.q_proj, {H * hd, d}, c.attention_bias);
      linear(p + ".k_proj", g.k_proj, {kv, d}, c.attention_bias);
      linear(p + ".v_proj", g.v_proj, {kv, d}, c.attention_bias);
      linear(p + ".o_proj", g.o_proj, {d, H * hd});
    }
  }

  void layer(int64_t index, LayerWeights& L) {
    const std::string p = "model.layers." + std::to_string(index);
    const int64_t d = c.hidden_size;
    vec(p + ".input_layernorm.weight", L.input_layernorm, d);
    attention(p + ".self_attn", L);
    vec(p + ".post_attention_layernorm.weight", L.post_attention_layernorm, d);
    L.is_moe = c.is_moe_layer(index);
    if (!L.is_moe) {
      mlp(p + ".mlp", L.mlp, c.intermediate_size);
      return;
    }
    MoeWeights& m = L.moe;
    linear(p + ".mlp.gate", m.gate, {c.n_routed_experts, d});
    if (c.has_correction_bias)
      vec(p + ".mlp.gate.e_score_correction_bias", m.e_score_correction_bias, c.n_routed_experts);
    m.experts.resize(size_t(c.n_routed_experts));
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      mlp(p + ".mlp.experts." + std::to_string(e), m.experts[size_t(e)], c.moe_intermediate_size);
    if (c.n_shared_experts > 0)
      mlp(p + ".mlp.shared_experts", m.shared_experts,
          c.n_shared_experts * c.moe_intermediate_size);
  }
};

}  // namespace

void visit_weights(const ModelConfig& c, ModelWeights& w, bool include_mtp,
                   const std::function<void(WeightSlot&)>& fn) {
  Visitor v{c, fn};
  const int64_t d = c.hidden_size, V = c.vocab_size;
  v.linear("model.embed_tokens", w.embed_tokens, {V, d});
  w.layers.resize(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) v.layer(l, w.layers[size_t(l)]);
  v.vec("model.norm.weight", w.norm, d);
  if (!c.tie_word_embeddings) v.linear("lm_head", w.lm_head, {V, d});
  if (!include_mtp) return;
  w.mtp.resize(size_t(c.num_nextn_predict_layers));
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    MtpWeights& m = w.mtp[size_t(k)];
    const int64_t index = c.num_hidden_layers + k;
    const std::string p = "model.layers." + std::to_string(index);
    v.linear(p + ".embed_tokens", m.embed_tokens, {V, d});
    v.vec(p + ".enorm.weight", m.enorm, d);
    v.vec(p + ".hnorm.weight", m.hnorm, d);
    v.linear(p + ".eh_proj", m.eh_proj, {d, 2 * d});
    v.layer(index, m.block);
    v.vec(p + ".shared_head.norm.weight", m.shared_head_norm, d);
    v.linear(p + ".shared_head.head", m.shared_head_head, {V, d});
  }
}

}  // namespace tern::model
