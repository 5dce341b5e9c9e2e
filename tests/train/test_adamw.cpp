// AdamW's fused zeroing: step(zero_grads) updates exactly as step() and leaves every gradient
// zero as zero_grad() does (the correction bias' slot, which the update skips, included); a
// Trainable then skips its next zero_grad() and only that one. grad_norm over chunked slots.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "train/adamw.h"
#include "train/trainable.h"

using namespace tern;

namespace {

const std::string kConfig = std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3/config.json";

void fill(const model::ModelConfig& c, model::ModelWeights& w, float base) {
  auto slots = model::grad::param_slots(c, w);
  for (size_t s = 0; s < slots.size(); ++s)
    if (!slots[s].alias)
      for (int64_t i = 0; i < slots[s].size; ++i)
        slots[s].data[i] = base + 0.01f * float((int64_t(s) * 13 + i * 7) % 23) - 0.1f;
}

void expect_zero(const model::ModelConfig& c, model::ModelWeights& g, const std::string& what) {
  for (const auto& s : model::grad::param_slots(c, g))
    for (int64_t i = 0; i < s.size; ++i) ASSERT_EQ(s.data[i], 0.0f) << what << " " << s.name;
}

}  // namespace

TEST(AdamW, FusedZeroingUpdatesAsStepThenZeroGrad) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  ThreadPool pool(2);
  model::ModelWeights pa = model::grad::make_f32_weights(c), ga = model::grad::make_f32_weights(c);
  model::ModelWeights pb = model::grad::make_f32_weights(c), gb = model::grad::make_f32_weights(c);
  fill(c, pa, 0.0f), fill(c, pb, 0.0f);
  train::AdamW a(c, pa, ga, {}), b(c, pb, gb, {});
  for (int step = 0; step < 3; ++step) {
    fill(c, ga, 0.02f * float(step)), fill(c, gb, 0.02f * float(step));
    a.step(1e-2, a.grad_norm(), pool, true);
    b.step(1e-2, b.grad_norm(), pool);
    b.zero_grad();
    expect_zero(c, ga, "after the fused step");
    auto sa = model::grad::param_slots(c, pa), sb = model::grad::param_slots(c, pb);
    for (size_t s = 0; s < sa.size(); ++s)
      for (int64_t i = 0; i < sa[s].size; ++i)
        ASSERT_EQ(sa[s].data[i], sb[s].data[i]) << sa[s].name << " step " << step;
  }
}

TEST(AdamW, TrainableSkipsOnlyTheZeroGradAfterAFusedStep) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  ThreadPool pool(2);
  auto t = train::Trainable::full(c, {});
  fill(c, t->params(), 0.0f);
  fill(c, t->grads(), 0.0f);
  t->step(1e-2, t->grad_norm(), pool, true);
  expect_zero(c, t->grads(), "after the fused step");
  t->zero_grad();             // free: nothing wrote the gradients since
  fill(c, t->grads(), 0.5f);  // a backward
  t->zero_grad();             // must zero again
  expect_zero(c, t->grads(), "after a backward and zero_grad");
  fill(c, t->grads(), 0.5f);
  t->step(1e-2, t->grad_norm(), pool);  // not fused: the gradients stay
  t->zero_grad();
  expect_zero(c, t->grads(), "after an unfused step and zero_grad");
}

// The norm sums each slot in fixed chunks over the pool: it must still be ||g||₂, with slots
// of one chunk, several, and a ragged last one (checked against a plain f64 sum; the chunked
// sum may differ from it only in rounding).
TEST(AdamW, GradNormOverChunkedSlotsIsTheNorm) {
  const std::vector<int64_t> sizes = {7, int64_t(1) << 15, (int64_t(5) << 15) + 123, 1000};
  std::vector<std::vector<float>> store(4 * sizes.size());
  std::vector<model::grad::ParamSlot> p, g, m, v;
  double ref = 0;
  for (size_t s = 0; s < sizes.size(); ++s) {
    for (int k = 0; k < 4; ++k) store[4 * s + k].assign(size_t(sizes[s]), 0.0f);
    std::vector<float>& gs = store[4 * s + 1];
    for (int64_t i = 0; i < sizes[s]; ++i) {
      gs[size_t(i)] = float((i * 37 + int64_t(s) * 11) % 101 - 50) * 1e-3f;
      ref += double(gs[size_t(i)]) * double(gs[size_t(i)]);
    }
    const auto slot = [&](int k) {
      model::grad::ParamSlot out;
      out.name = "w" + std::to_string(s);
      out.shape = {sizes[s]};
      out.data = store[4 * s + k].data();
      out.size = sizes[s];
      return out;
    };
    p.push_back(slot(0)), g.push_back(slot(1)), m.push_back(slot(2)), v.push_back(slot(3));
  }
  train::AdamW a(p, g, m, v, {});
  const double norm = a.grad_norm();
  EXPECT_NEAR(norm, std::sqrt(ref), 1e-12 * std::sqrt(ref));
  EXPECT_EQ(norm, a.grad_norm());  // the same bits every call
}
