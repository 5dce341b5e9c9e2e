#include "train/gradient_buckets.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "model/grad/model_grad.h"

namespace tern::train {

namespace {

// The group of ModelGrad::on_grads_ready that finishes a parameter's gradient.
int64_t grads_group(const std::string& name) {
  const std::string layers = "model.layers.";
  if (name.rfind(layers, 0) == 0) return std::atoll(name.c_str() + layers.size());
  if (name.rfind("model.embed_tokens", 0) == 0) return model::grad::ModelGrad::kEmbedding;
  return model::grad::ModelGrad::kHeadAndNorm;  // model.norm, lm_head
}

}  // namespace

BucketLayout::BucketLayout(const model::ModelConfig& c,
                           const std::vector<model::grad::ParamSlot>& slots, int64_t bucket_bytes,
                           bool local_experts, const model::grad::HeldSlots& include) {
  const int64_t L = c.num_hidden_layers, mtp = c.num_nextn_predict_layers;
  for (int64_t k = mtp - 1; k >= 0; --k) order_.push_back(L + k);
  order_.push_back(model::grad::ModelGrad::kHeadAndNorm);
  for (int64_t l = L - 1; l >= 0; --l) order_.push_back(l);
  order_.push_back(model::grad::ModelGrad::kEmbedding);
  struct Slot {
    int64_t index, size, pos;
  };
  std::vector<Slot> trained;
  for (size_t i = 0; i < slots.size(); ++i) {
    const model::grad::ParamSlot& s = slots[i];
    if (local_experts && model::grad::routed_expert_slot(s.name)) continue;
    if (include && !include(s.name)) continue;
    if (s.trainable && !s.alias && s.size > 0)
      trained.push_back({int64_t(i), s.size, position(grads_group(s.name))});
  }
  std::stable_sort(trained.begin(), trained.end(),
                   [](const Slot& a, const Slot& b) { return a.pos < b.pos; });

  const int64_t cap = std::max<int64_t>(1, bucket_bytes / int64_t(sizeof(float)));
  GradBucket open;
  auto close = [&] {
    if (open.parts.empty()) return;
    buckets_.push_back(std::move(open));
    open = GradBucket{};
  };
  for (const Slot& s : trained) {
    floats_ += s.size;
    if (open.size + s.size > cap) close();
    open.parts.push_back({s.index, s.size});
    open.ready_at = std::max(open.ready_at, s.pos);
    open.size += s.size;
  }
  close();
}

int64_t BucketLayout::position(int64_t group) const {
  const auto it = std::find(order_.begin(), order_.end(), group);
  TERN_CHECK(it != order_.end());
  return int64_t(it - order_.begin());
}

}  // namespace tern::train
