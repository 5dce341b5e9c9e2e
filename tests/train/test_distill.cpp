// Logit distillation (train/distill_loss.h): one row's loss and gradient against finite
// differences and hand values, and the whole loss and every parameter's gradient of the tiny
// DeepSeek-V3 student against the independent PyTorch reference
// (tests/reference/make_distill_golden.py → tests/golden/distill_tiny_v3, float64).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "model/grad/f32_weights.h"
#include "tests/train/golden_params.h"
#include "train/distill_loss.h"

using namespace tern;
using namespace tern::train;

TEST(DistillLoss, MatchingDistributionsCostNothingAndGradientsMatchFiniteDifferences) {
  const std::vector<float> t = {1.0f, -0.5f, 2.0f, 0.3f, -1.2f};
  std::vector<float> s = t;
  EXPECT_NEAR(distill_row(t.data(), s.data(), 5, 2, {2.0, 0.0}, 1.0), 0.0, 1e-12);
  for (float g : s) EXPECT_NEAR(g, 0.0f, 1e-7f);

  const std::vector<float> s0 = {0.2f, 0.1f, -0.7f, 1.5f, 0.0f};
  for (const DistillSettings ds : {DistillSettings{2.0, 0.0}, DistillSettings{0.7, 0.4}}) {
    std::vector<float> grad = s0;
    distill_row(t.data(), grad.data(), 5, 3, ds, 1.0);
    double sum = 0;
    for (int v = 0; v < 5; ++v) {
      const double h = 1e-3;
      std::vector<float> up = s0, down = s0;
      up[size_t(v)] += float(h), down[size_t(v)] -= float(h);
      const double fd = (distill_row(t.data(), up.data(), 5, 3, ds, 1.0) -
                         distill_row(t.data(), down.data(), 5, 3, ds, 1.0)) /
                        (2 * h);
      EXPECT_NEAR(grad[size_t(v)], fd, 1e-4) << "logit " << v << " tau " << ds.temperature;
      sum += grad[size_t(v)];
    }
    EXPECT_NEAR(sum, 0.0, 1e-6) << "a softmax's gradient sums to zero";
  }
}

TEST(DistillGolden, LossAndEveryGradientMatchPyTorch) {
  const std::string src = std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3";
  const std::string dir = std::string(TERN_TEST_DATA) + "/golden/distill_tiny_v3";
  const model::ModelConfig c = model::ModelConfig::from_file(src + "/config.json");
  model::ModelWeights w = model::grad::make_f32_weights(c), g = model::grad::make_f32_weights(c);
  test::load_golden_params(c, w, src + "/init.safetensors");
  std::ifstream in(dir + "/case.json");
  const nlohmann::json cs = nlohmann::json::parse(in);
  const auto batch = formats::Checkpoint::open(src + "/batch.safetensors");
  const auto teacher = formats::Checkpoint::open(dir + "/teacher.safetensors");
  const Tensor& tl = teacher.get("logits");
  const std::vector<float> logits(tl.data_as<const float>(),
                                  tl.data_as<const float>() + tl.numel());
  const int64_t T = 16, S = model::grad::window_tokens(c, T);
  const model::grad::TrainBatch tb{2, T, batch.get("tokens").data_as<const int32_t>(),
                                   batch.get("docs").data_as<const int32_t>()};
  ThreadPool pool(2);
  model::grad::ModelGrad net(c, 2, T);
  const model::grad::StepResult r =
      distill_backward(net, logits, w, g, tb, S, {0.3f, 0.0f, 1.0f},
                       {cs["temperature"].get<double>(), cs["hard_weight"].get<double>()}, pool);
  EXPECT_EQ(r.main_targets, cs["targets"].get<int64_t>());
  EXPECT_NEAR(r.main, cs["loss"].get<double>(), 1e-5);
  const int compared = test::expect_grads_match(c, g, dir + "/grads.safetensors").compared;
  EXPECT_GT(compared, 100);
}
