#include "model/gguf_names.h"

#include <map>

namespace tern::model {

bool hf_to_gguf_name(const std::string& hf, std::string* gguf, int64_t* expert) {
  static const std::map<std::string, std::string> kGlobal = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  static const std::map<std::string, std::string> kLayer = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_a_proj.weight", "attn_q_a.weight"},
      {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight"},
      {"self_attn.q_b_proj.weight", "attn_q_b.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight"},
      {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight"},
      {"self_attn.kv_b_proj.weight", "attn_kv_b.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"mlp.gate.weight", "ffn_gate_inp.weight"},
      {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias"},
      {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"},
      {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"},
      {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight"},
  };
  *expert = -1;
  if (auto it = kGlobal.find(hf); it != kGlobal.end()) return *gguf = it->second, true;
  // "model.layers.N.REST" -> "blk.N." + translated REST
  const std::string kLayers = "model.layers.";
  if (!hf.starts_with(kLayers)) return false;
  const size_t dot = hf.find('.', kLayers.size());
  const std::string n = hf.substr(kLayers.size(), dot - kLayers.size());
  if (dot == std::string::npos || n.empty() ||
      n.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const std::string blk = "blk." + n + ".", rest = hf.substr(dot + 1);
  if (auto it = kLayer.find(rest); it != kLayer.end()) return *gguf = blk + it->second, true;
  // "mlp.experts.E.{gate,up,down}_proj.weight" -> stacked "ffn_{gate,up,down}_exps.weight", expert
  // E
  const std::string kExperts = "mlp.experts.";
  if (!rest.starts_with(kExperts)) return false;
  const size_t edot = rest.find('.', kExperts.size());
  const std::string e = rest.substr(kExperts.size(), edot - kExperts.size());
  if (edot == std::string::npos || e.empty() ||
      e.find_first_not_of("0123456789") != std::string::npos)
    return false;
  for (const char* proj : {"gate", "up", "down"}) {
    if (rest.substr(edot + 1) == std::string(proj) + "_proj.weight") {
      *expert = std::stoll(e);
      *gguf = blk + "ffn_" + proj + "_exps.weight";
      return true;
    }
  }
  return false;
}

}  // namespace tern::model
