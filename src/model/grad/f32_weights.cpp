#include "model/grad/f32_weights.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "core/random.h"

namespace tern::model::grad {
namespace {

bool is_correction_bias(const std::string& name) {
  const std::string suffix = "e_score_correction_bias";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Gives two projections of one input a single allocation, a's rows first, so training can
// run them as one GEMM (linear_grad.h: joint_rows): an MLP's gate and up, MLA's q_a and kv_a.
// Values are zero here, so nothing is copied.
void join_rows(Linear& a, Linear& b) {
  if (!a.present() || !b.present() || !a.bias.empty() || !b.bias.empty()) return;
  const int64_t ra = a.view.rows, rb = b.view.rows, cols = a.view.cols;
  if (b.view.cols != cols) return;
  const Tensor joint = Tensor::zeros(DType::f32, {ra + rb, cols});
  float* base = joint.data_as<float>();
  a.data = Tensor(DType::f32, {ra, cols}, base, joint.owner());
  b.data = Tensor(DType::f32, {rb, cols}, base + ra * cols, joint.owner());
  a.view.data = a.data.data();
  b.view.data = b.data.data();
}

}  // namespace

bool routed_expert_slot(const std::string& name, int64_t* e) {
  const std::string tag = ".mlp.experts.";
  const size_t at = name.find(tag);
  if (at == std::string::npos) return false;
  if (e) *e = std::atoll(name.c_str() + at + tag.size());
  return true;
}

ModelWeights make_f32_weights(const ModelConfig& c, const ExpertParallel* ep,
                              const HeldSlots& held) {
  ModelWeights w;
  const bool mtp = c.num_nextn_predict_layers > 0;
  visit_weights(c, w, mtp, [&](WeightSlot& s) {
    int64_t e = 0;
    if (ep && ep->active() && routed_expert_slot(s.name, &e) && !ep->holds(e, c.n_routed_experts))
      return;                           // another rank's expert
    if (held && !held(s.name)) return;  // another pipeline stage's
    Tensor t = Tensor::zeros(DType::f32, s.shape);
    if (s.kind == SlotKind::vector) {
      s.vector->data = t;
      return;
    }
    Linear& l = *s.linear;
    if (s.has_bias) l.bias = Tensor::zeros(DType::f32, {s.shape[0]});
    l.data = t;
    l.view = kernels::WeightView{};
    l.view.dtype = DType::f32;
    l.view.rows = s.shape[0];
    l.view.cols = s.shape[1];
    l.view.data = t.data();
  });
  const auto join_layer = [](LayerWeights& l) {
    join_rows(l.mla.q_a_proj, l.mla.kv_a_proj_with_mqa);
    join_rows(l.mlp.gate_proj, l.mlp.up_proj);
    join_rows(l.moe.shared_experts.gate_proj, l.moe.shared_experts.up_proj);
    for (MlpWeights& e : l.moe.experts) join_rows(e.gate_proj, e.up_proj);
  };
  for (LayerWeights& l : w.layers) join_layer(l);
  for (MtpWeights& m : w.mtp) join_layer(m.block);
  if (c.tie_word_embeddings) w.lm_head = w.embed_tokens;
  for (MtpWeights& m : w.mtp) {
    m.embed_tokens = w.embed_tokens;
    m.shared_head_head = c.tie_word_embeddings ? w.embed_tokens : w.lm_head;
  }
  return w;
}

int64_t f32_weight_count(const ModelConfig& c, const ExpertParallel* ep, const HeldSlots& held) {
  ModelWeights w;  // the structure only: slots are visited, not filled
  int64_t n = 0;
  visit_weights(c, w, c.num_nextn_predict_layers > 0, [&](WeightSlot& s) {
    int64_t e = 0;
    if (ep && ep->active() && routed_expert_slot(s.name, &e) && !ep->holds(e, c.n_routed_experts))
      return;
    if (held && !held(s.name)) return;
    // The MTP modules' embedding and head are views of the main ones (make_f32_weights).
    if (s.name.rfind("model.embed_tokens", 0) != 0 &&
        (s.name.find(".embed_tokens.") != std::string::npos ||
         s.name.find(".shared_head.head.") != std::string::npos))
      return;
    int64_t size = 1;
    for (int64_t x : s.shape) size *= x;
    n += size + (s.kind == SlotKind::linear && s.has_bias ? s.shape[0] : 0);
  });
  return n;
}

std::vector<ParamSlot> param_slots(const ModelConfig& c, ModelWeights& w) {
  std::vector<ParamSlot> out;
  const void* embed = w.embed_tokens.data.data();
  const void* head = (c.tie_word_embeddings ? w.embed_tokens : w.lm_head).data.data();
  visit_weights(c, w, c.num_nextn_predict_layers > 0, [&](WeightSlot& s) {
    const Tensor& t = s.kind == SlotKind::vector ? s.vector->data : s.linear->data;
    ParamSlot p;
    p.name = s.name;
    p.shape = s.shape;
    if (t.empty()) {  // expert or pipeline parallel: held by another rank
      p.elsewhere = true;
      p.trainable = false;
      out.push_back(p);
      return;
    }
    TERN_CHECK(t.dtype() == DType::f32);
    p.data = const_cast<float*>(t.data_as<const float>());
    p.size = t.numel();
    const bool mtp_copy = s.kind == SlotKind::linear &&
                          (s.name.find(".embed_tokens.") != std::string::npos ||
                           s.name.find(".shared_head.head.") != std::string::npos) &&
                          s.name.rfind("model.embed_tokens", 0) != 0 &&
                          (t.data() == embed || t.data() == head);
    p.alias = mtp_copy;
    p.trainable = !mtp_copy && !is_correction_bias(s.name);
    p.decay = p.trainable && s.shape.size() == 2;
    out.push_back(p);
    if (s.kind == SlotKind::linear && s.has_bias) {  // Qwen2's q/k/v biases: their own slot
      const Tensor& b = s.linear->bias;
      TERN_CHECK(b.dtype() == DType::f32);
      ParamSlot q;
      q.name = s.name.substr(0, s.name.size() - 7) + ".bias";  // "...weight" -> "...bias"
      q.shape = {s.shape[0]};
      q.data = const_cast<float*>(b.data_as<const float>());
      q.size = b.numel();
      out.push_back(std::move(q));
    }
  });
  return out;
}

void init_random(const ModelConfig& c, ModelWeights& w, uint64_t seed, double std) {
  for (const auto& p : param_slots(c, w)) {
    if (p.alias || !p.data) continue;
    if (p.shape.size() == 1) {
      const bool bias = is_correction_bias(p.name);
      std::fill_n(p.data, p.size, bias ? 0.0f : 1.0f);
      continue;
    }
    rng::fill_normal(seed, rng::stream_id("init." + p.name), 0, p.data, size_t(p.size), 0.0, std);
  }
}

}  // namespace tern::model::grad
