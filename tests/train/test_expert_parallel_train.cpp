// Expert-parallel training (model/grad/moe_grad.h, MoeContext::ep) on the in-process
// communicator, one thread per rank: the tiny V3 config (MoE layers and an MTP module), a batch of
// 4 windows split over 2 and 4 ranks, each rank running only its block of routed experts with
// rows exchanged by all-to-all. The summed gradients (what data parallelism reduces) equal one
// process's on the whole batch to 1e-5 relative, the losses and expert loads too; the same
// again with recomputation (the forward's exchange repeated inside the backward).
#include <gtest/gtest.h>

#include <cmath>

#include "core/random.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/grad/model_grad.h"
#include "tests/dist/on_ranks.h"
#include "train/data_parallel.h"

using namespace tern;
using tern::dist::test::on_ranks;

namespace {

const std::string kConfig = std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3/config.json";

void init(const model::ModelConfig& c, model::ModelWeights& w) {
  for (const auto& p : model::grad::param_slots(c, w)) {
    if (p.alias) continue;
    if (p.shape.size() == 1) {
      std::fill_n(p.data, p.size,
                  p.name.find("correction_bias") != std::string::npos ? 0.0f : 1.0f);
      continue;
    }
    rng::fill_normal(11, rng::stream_id("init." + p.name), 0, p.data, size_t(p.size), 0.0, 0.05);
  }
}

}  // namespace

TEST(ExpertParallelTraining, SummedGradientsEqualTheOneProcessStep) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  const int64_t B = 4, T = 12, S = model::grad::window_tokens(c, T);
  std::vector<int32_t> tokens(static_cast<size_t>(B * S)), docs(static_cast<size_t>(B * S));
  for (int64_t i = 0; i < B * S; ++i) {
    tokens[size_t(i)] = int32_t((i * 37 + 11) % c.vocab_size);
    docs[size_t(i)] = int32_t(i / S) * 2 + (i % S > S / 2);  // a boundary inside each window
  }
  model::ModelWeights w = model::grad::make_f32_weights(c);
  init(c, w);
  const model::grad::LossWeights lw{0.3f, 1e-2f, 1.0f};
  for (bool recompute : {false, true}) {
    model::ModelWeights g1 = model::grad::make_f32_weights(c);
    ThreadPool pool(1);
    model::grad::ModelGrad one(c, B, T, recompute);
    const model::grad::StepResult want =
        one.step(w, g1, {B, T, tokens.data(), docs.data()}, lw, pool);
    const auto want_slots = model::grad::param_slots(c, g1);
    for (int n : {2, 4}) {
      on_ranks(n, [&](dist::Communicator& comm) {
        const int64_t local = B / n;
        model::ModelWeights g = model::grad::make_f32_weights(c);
        ThreadPool rank_pool(1);
        model::grad::ModelGrad net(c, local, T, recompute);
        net.set_expert_parallel(model::ExpertParallel{&comm});
        model::grad::LossWeights rlw = lw;
        rlw.targets = double(train::count_targets(docs.data(), B, S, T));
        rlw.balance_alpha /= float(n);
        const int64_t first = comm.rank() * local * S;
        model::grad::StepResult r =
            net.step(w, g, {local, T, tokens.data() + first, docs.data() + first}, rlw, rank_pool);
        train::GradientReducer reducer(comm, c, g, 1 << 20);
        reducer.sum();
        std::vector<double> numbers = {r.main, r.mtp};
        train::reduce_step_numbers(comm, numbers, r.expert_counts);
        const std::string what = std::to_string(n) + " ranks" + (recompute ? ", recompute" : "");
        EXPECT_NEAR(numbers[0], want.main, 1e-6 * want.main) << what;
        EXPECT_NEAR(numbers[1], want.mtp, 1e-6 * want.mtp) << what;
        EXPECT_EQ(r.expert_counts, want.expert_counts) << what;
        const auto slots = model::grad::param_slots(c, g);
        for (size_t k = 0; k < slots.size(); ++k) {
          if (!slots[k].trainable || slots[k].alias) continue;
          double worst = 0, scale = 0;
          for (int64_t i = 0; i < slots[k].size; ++i) {
            scale = std::max(scale, double(std::fabs(want_slots[k].data[i])));
            worst = std::max(worst, double(std::fabs(slots[k].data[i] - want_slots[k].data[i])));
          }
          ASSERT_LE(worst, 1e-5 * scale + 1e-9) << slots[k].name << ", " << what;
        }
      });
    }
  }
}
