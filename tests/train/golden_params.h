// What the training goldens share (tests/golden/train_tiny_v3 and the GRPO and distillation
// cases built on it): the f32 parameters from a safetensors file, and every trainable slot's
// gradient compared with the reference's within 1e-5 of the tensor's largest entry (the f32
// engine's own spread is ~2e-6 of it, make_train_golden.py's robustness runs).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "formats/checkpoint.h"
#include "model/grad/f32_weights.h"

namespace tern::test {

// Copies every non-alias slot of w from the file's tensor of the same name.
inline void load_golden_params(const model::ModelConfig& c, model::ModelWeights& w,
                               const std::string& path) {
  const auto file = formats::Checkpoint::open(path);
  for (auto& p : model::grad::param_slots(c, w)) {
    if (p.alias) continue;
    const Tensor& t = file.get(p.name);
    EXPECT_EQ(t.numel(), p.size) << p.name;
    std::copy_n(t.data_as<const float>(), p.size, p.data);
  }
}

struct GradCompare {
  int compared = 0, nonzero = 0;  // trainable slots, and those with a non-zero reference
};

inline GradCompare expect_grads_match(const model::ModelConfig& c, model::ModelWeights& g,
                                      const std::string& path) {
  const auto grads = formats::Checkpoint::open(path);
  GradCompare r;
  for (auto& p : model::grad::param_slots(c, g)) {
    if (!p.trainable) continue;
    const float* ref = grads.get(p.name).data_as<const float>();
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < p.size; ++i) scale = std::max(scale, double(std::fabs(ref[i])));
    for (int64_t i = 0; i < p.size; ++i)
      worst = std::max(worst, double(std::fabs(p.data[i] - ref[i])));
    EXPECT_LE(worst, 1e-5 * scale + 1e-9) << p.name << " (largest entry " << scale << ")";
    ++r.compared;
    r.nonzero += scale > 0;
  }
  return r;
}

}  // namespace tern::test
