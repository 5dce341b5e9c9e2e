// AdamW with PyTorch's semantics (decoupled decay on matrices, bias correction) over every
// trainable slot of f32 ModelWeights, plus global-norm clipping. Moments are f32 ModelWeights
// of the same layout, so checkpoints save them by the same names. Sums are taken in a fixed
// order, so an update is the same whatever the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/weights.h"

namespace tern::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  double clip = 1.0;  // global gradient-norm limit; <= 0: no clipping
};

// The constants of one update at rate lr, step count t (after increment), gradient norm `norm`.
struct AdamWUpdate {
  float clip, b1, b2, a1, a2, step, inv_sqrt_c2, eps, decay_factor;
  static AdamWUpdate make(const AdamWConfig& cfg, double lr, double norm, int64_t t);
};
// p, m, v updated from g over n elements (decay: the slot takes weight decay). The arithmetic
// AdamW and its ZeRO-sharded form (train/zero_adamw.h) share, so both give the same bits.
void adamw_update(const AdamWUpdate& u, bool decay, float* p, const float* g, float* m, float* v,
                  int64_t n);

class AdamW {
 public:
  // ep (expert parallel) and held (pipeline stages): params and grads were made for them; the
  // moments hold only this rank's tensors too.
  AdamW(const model::ModelConfig& c, model::ModelWeights& params, model::ModelWeights& grads,
        AdamWConfig cfg, const model::ExpertParallel* ep = nullptr,
        const model::grad::HeldSlots& held = {});
  // Over explicit slots (LoRA adapters): parameters, gradients and the two moments, index by
  // index of the same shapes; m() and v() are then empty.
  AdamW(std::vector<model::grad::ParamSlot> params, std::vector<model::grad::ParamSlot> grads,
        std::vector<model::grad::ParamSlot> m, std::vector<model::grad::ParamSlot> v,
        AdamWConfig cfg);

  // ||g||₂ over every trainable slot (f64, slots in order, each summed in fixed chunks on the
  // global pool and the chunks added in order: the same bits at any thread count).
  double grad_norm() const;
  // Σ g² over the trainable routed-expert slots (routed_experts) or over the others (summed as
  // grad_norm sums).
  double sum_squares(bool routed_experts) const;
  // Σ g² over the trainable slots whose names `counted` accepts (slots in order).
  double sum_squares(const std::function<bool(const std::string& name)>& counted) const;
  // Clips by `norm` (grad_norm()), applies one update at rate lr, increments the step count.
  // zero_grads: leaves every gradient zero, as zero_grad() would, each piece zeroed as soon as
  // the update has read it (still in cache: one pass over the gradients instead of two).
  void step(double lr, double norm, ThreadPool& pool, bool zero_grads = false);
  // Sets every gradient to zero (before the next accumulation).
  void zero_grad();

  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  model::ModelWeights& m() { return m_; }
  model::ModelWeights& v() { return v_; }
  const AdamWConfig& config() const { return cfg_; }

 private:
  void zero_slot(size_t i, ThreadPool& pool);

  AdamWConfig cfg_;
  model::ModelWeights m_, v_;
  std::vector<model::grad::ParamSlot> p_, g_, ms_, vs_;
  int64_t t_ = 0;
};

}  // namespace tern::train
