// Walks ModelWeights by hand rather than through visit_weights, which resizes the weights it is
// given and so needs them mutable; the loaded model is immutable and shared.
#include "apps/tern/bench_bytes.h"

#include <algorithm>

namespace tern::app {
namespace {

double bytes(const model::Linear& l) {
  return double(l.data.nbytes() + l.scale.nbytes() + l.bias.nbytes());
}

double bytes(const model::Vector& v) {
  return double(v.data.nbytes());
}

double bytes(const model::MlpWeights& m) {
  return bytes(m.gate_proj) + bytes(m.up_proj) + bytes(m.down_proj);
}

// The absorbed MLA form reads per-head views of kv_b_proj (or of the split k_b / v_b a GGUF
// stores); their bytes are those of the source tensors, so the derived copies are not added.
double attention_bytes(const model::LayerWeights& L) {
  const model::MlaWeights& a = L.mla;
  const model::GqaWeights& g = L.gqa;
  return bytes(a.q_a_proj) + bytes(a.q_b_proj) + bytes(a.q_proj) + bytes(a.q_a_layernorm) +
         bytes(a.kv_a_proj_with_mqa) + bytes(a.kv_a_layernorm) + bytes(a.kv_b_proj) +
         double(a.k_b.nbytes() + a.v_b.nbytes()) + bytes(a.o_proj) + bytes(g.q_proj) +
         bytes(g.k_proj) + bytes(g.v_proj) + bytes(g.o_proj);
}

void add_dtype(const model::Linear& l, std::vector<kernels::WeightView>& out) {
  if (l.present() && std::none_of(out.begin(), out.end(), [&](const kernels::WeightView& v) {
        return v.dtype == l.view.dtype;
      }))
    out.push_back(l.view);
}

}  // namespace

std::vector<kernels::WeightView> matrix_kinds(const model::Model& m) {
  const model::ModelWeights& w = m.weights();
  std::vector<kernels::WeightView> out;
  for (const model::LayerWeights& L : w.layers) {
    const model::MlaWeights& a = L.mla;
    const model::GqaWeights& g = L.gqa;
    for (const model::Linear* l :
         {&a.q_a_proj, &a.q_b_proj, &a.q_proj, &a.kv_a_proj_with_mqa, &a.kv_b_proj, &a.o_proj,
          &g.q_proj, &g.k_proj, &g.v_proj, &g.o_proj, &L.mlp.gate_proj, &L.mlp.up_proj,
          &L.mlp.down_proj, &L.moe.shared_experts.gate_proj, &L.moe.shared_experts.down_proj})
      add_dtype(*l, out);
    for (const model::MlpWeights& e : L.moe.experts)
      add_dtype(e.gate_proj, out), add_dtype(e.down_proj, out);
  }
  add_dtype(w.lm_head, out);
  return out;
}

DecodeWeightBytes decode_weight_bytes(const model::Model& m) {
  const model::ModelConfig& c = m.config();
  const model::ModelWeights& w = m.weights();
  DecodeWeightBytes d;
  // A token reads one row of the embedding, not the table.
  d.dense += c.vocab_size > 0 ? bytes(w.embed_tokens) / double(c.vocab_size) : 0;
  d.dense += bytes(w.norm) + bytes(w.lm_head);
  for (const model::LayerWeights& L : w.layers) {
    d.dense += bytes(L.input_layernorm) + bytes(L.post_attention_layernorm) + attention_bytes(L);
    if (!L.is_moe) {
      d.dense += bytes(L.mlp);
      continue;
    }
    d.dense +=
        bytes(L.moe.gate) + bytes(L.moe.e_score_correction_bias) + bytes(L.moe.shared_experts);
    double routed = 0;
    for (const model::MlpWeights& e : L.moe.experts) routed += bytes(e);
    d.routed_total += routed;
    if (!L.moe.experts.empty())
      d.routed_per_token += routed * double(c.num_experts_per_tok) / double(L.moe.experts.size());
  }
  return d;
}

}  // namespace tern::app
