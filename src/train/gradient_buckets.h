// How data parallelism groups the gradients it communicates: the trainable tensors (not the
// MTP modules' aliases of the embedding and head, not the bias the balancing rule moves) in the
// order the backward finishes them (model/grad/model_grad.h: MTP modules, head and final norm,
// layers from the last, embedding), packed into buckets of at most a given size; a larger tensor
// is a bucket of its own. Plain data parallelism all-reduces each bucket, ZeRO-1 reduce-scatters
// it and gives each rank one contiguous range of it to update.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/grad/f32_weights.h"

namespace tern::train {

struct GradBucket {
  struct Part {
    int64_t slot;  // index into param_slots(c, ·) of f32 weights made for c
    int64_t size;
  };
  std::vector<Part> parts;
  int64_t size = 0;      // floats
  int64_t ready_at = 0;  // position in the backward's order after which every part is final
};

class BucketLayout {
 public:
  // `slots`: param_slots(c, w) of any f32 weights made for c (only names and sizes are read).
  // local_experts: leave every routed expert out (expert parallel: each rank's experts are its
  // own, their gradients complete on their owner, and ranks hold different ones). include: only
  // the tensors it accepts (pipeline stages: those one group of ranks holds); empty: all.
  BucketLayout(const model::ModelConfig& c, const std::vector<model::grad::ParamSlot>& slots,
               int64_t bucket_bytes, bool local_experts = false,
               const model::grad::HeldSlots& include = {});
  const std::vector<GradBucket>& buckets() const { return buckets_; }
  int64_t floats() const { return floats_; }
  // Position of a ModelGrad::on_grads_ready group in the backward's order.
  int64_t position(int64_t group) const;

 private:
  std::vector<int64_t> order_;  // the backward's groups in order
  std::vector<GradBucket> buckets_;
  int64_t floats_ = 0;
};

// Rank r's contiguous share of `size` elements split over n ranks: [begin, end).
inline int64_t share_begin(int64_t size, int r, int n) {
  return size * r / n;
}

}  // namespace tern::train
