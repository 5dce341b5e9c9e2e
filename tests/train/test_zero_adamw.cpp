// ZeRO-1 (train/zero_adamw.h) on the in-process communicator, one thread per rank, against
// plain AdamW in one process on the rank-order sum of the same gradients: parameters equal bit
// for bit after several steps (bucket sizes below and above tensor sizes, the reduction started
// during a simulated backward or after it, 1..3 ranks); the norm equal to 1e-12 relative (only
// its f64 summation order differs); with clipping binding, parameters within 1e-6; moments
// gathered to rank 0 equal AdamW's; moments taken back at another rank count continue the same
// run (a checkpoint resumed at any N); shares cover every trained value once.
#include <gtest/gtest.h>

#include <cmath>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/grad/model_grad.h"
#include "tests/dist/on_ranks.h"
#include "train/adamw.h"
#include "train/zero_adamw.h"

using namespace tern;
using tern::dist::test::on_ranks;

namespace {

const std::string kConfig = std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3/config.json";

float grad_value(int rank, int step, size_t slot, int64_t i) {
  return 0.01f * float((rank + 1) * 7 + step * 5 + int64_t(slot) * 3 + i % 13) - 0.5f;
}

void init_params(const model::ModelConfig& c, model::ModelWeights& p) {
  auto slots = model::grad::param_slots(c, p);
  for (size_t s = 0; s < slots.size(); ++s)
    if (!slots[s].alias)
      for (int64_t i = 0; i < slots[s].size; ++i)
        slots[s].data[i] = 0.02f * float((int64_t(s) * 31 + i * 7) % 17) - 0.15f;
}

void fill_grads(const model::ModelConfig& c, model::ModelWeights& g, int rank, int step) {
  auto slots = model::grad::param_slots(c, g);
  for (size_t s = 0; s < slots.size(); ++s)
    if (!slots[s].alias)
      for (int64_t i = 0; i < slots[s].size; ++i) slots[s].data[i] = grad_value(rank, step, s, i);
}

// The one-process reference: AdamW on the rank-order sum of every rank's gradients.
struct Reference {
  model::ModelWeights p, g;
  std::unique_ptr<train::AdamW> adam;
  std::vector<double> norms;
  Reference(const model::ModelConfig& c, train::AdamWConfig cfg, int ranks, int steps)
      : p(model::grad::make_f32_weights(c)), g(model::grad::make_f32_weights(c)) {
    init_params(c, p);
    adam = std::make_unique<train::AdamW>(c, p, g, cfg);
    ThreadPool pool(1);
    for (int t = 0; t < steps; ++t) run_step(c, ranks, t, pool);
  }
  void run_step(const model::ModelConfig& c, int ranks, int t, ThreadPool& pool) {
    auto slots = model::grad::param_slots(c, g);
    for (size_t s = 0; s < slots.size(); ++s)
      if (!slots[s].alias)
        for (int64_t i = 0; i < slots[s].size; ++i) {
          float sum = grad_value(0, t, s, i);
          for (int r = 1; r < ranks; ++r) sum += grad_value(r, t, s, i);
          slots[s].data[i] = sum;
        }
    norms.push_back(adam->grad_norm());
    adam->step(1e-2, norms.back(), pool);
  }
};

// The backward's group order (what ModelGrad::on_grads_ready reports).
std::vector<int64_t> backward_groups(const model::ModelConfig& c) {
  std::vector<int64_t> g;
  for (int64_t k = c.num_nextn_predict_layers - 1; k >= 0; --k)
    g.push_back(c.num_hidden_layers + k);
  g.push_back(model::grad::ModelGrad::kHeadAndNorm);
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) g.push_back(l);
  g.push_back(model::grad::ModelGrad::kEmbedding);
  return g;
}

void expect_params_equal(const model::ModelConfig& c, model::ModelWeights& a,
                         model::ModelWeights& b, double rel, const std::string& what) {
  auto sa = model::grad::param_slots(c, a), sb = model::grad::param_slots(c, b);
  for (size_t s = 0; s < sa.size(); ++s)
    for (int64_t i = 0; i < sa[s].size; ++i) {
      if (rel == 0)
        ASSERT_EQ(sa[s].data[i], sb[s].data[i]) << what << " " << sa[s].name << " " << i;
      else
        ASSERT_NEAR(sa[s].data[i], sb[s].data[i], rel * (1 + std::fabs(sb[s].data[i])))
            << what << " " << sa[s].name << " " << i;
    }
}

}  // namespace

TEST(ZeroAdamW, ShardedStepsEqualAdamWOnTheSummedGradients) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  const int steps = 3;
  train::AdamWConfig cfg;
  cfg.clip = 0;  // no clipping: the norm's summation order cannot touch the update
  for (int ranks : {1, 2, 3}) {
    Reference ref(c, cfg, ranks, steps);
    for (int64_t bucket : {int64_t(4000), int64_t(1) << 30})
      for (bool overlap : {false, true})
        on_ranks(ranks, [&](dist::Communicator& comm) {
          model::ModelWeights p = model::grad::make_f32_weights(c);
          model::ModelWeights g = model::grad::make_f32_weights(c);
          init_params(c, p);
          train::ZeroAdamW zero(comm, c, p, g, cfg, bucket);
          ThreadPool pool(1);
          for (int t = 0; t < steps; ++t) {
            zero.zero_grad();
            fill_grads(c, g, comm.rank(), t);
            if (overlap)
              for (int64_t group : backward_groups(c)) zero.grads_ready(group);
            zero.reduce();
            const double norm = zero.grad_norm();
            EXPECT_NEAR(norm, ref.norms[size_t(t)], 1e-12 * ref.norms[size_t(t)]);
            zero.step(1e-2, norm, pool);
          }
          const std::string what = std::to_string(ranks) + " ranks, bucket " +
                                   std::to_string(bucket) + (overlap ? ", overlapped" : "");
          expect_params_equal(c, p, ref.p, 0, what);
          if (overlap && ranks > 1) {
            EXPECT_EQ(zero.started_early(), zero.buckets()) << what;
          }

          // Shares: every trained value exactly once over the ranks.
          std::vector<int64_t> all(static_cast<size_t>(ranks));
          int64_t mine = zero.owned_floats();
          comm.all_gather(&mine, all.data(), sizeof mine)->wait();
          int64_t total = 0;
          for (int64_t k : all) total += k;
          EXPECT_EQ(total, zero.gradient_floats());
          EXPECT_DOUBLE_EQ(zero.bytes_per_step(),
                           2.0 * (ranks - 1) / ranks * double(zero.gradient_floats()) * 4);

          // Moments gathered to rank 0 are AdamW's.
          if (comm.rank() == 0) {
            model::ModelWeights m = model::grad::make_f32_weights(c);
            model::ModelWeights v = model::grad::make_f32_weights(c);
            zero.gather_moments(&m, &v);
            expect_params_equal(c, m, ref.adam->m(), 0, what + " m");
            expect_params_equal(c, v, ref.adam->v(), 0, what + " v");
          } else {
            zero.gather_moments(nullptr, nullptr);
          }
        });
  }
}

TEST(ZeroAdamW, MomentsSavedAtOneRankCountContinueAtAnother) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  train::AdamWConfig cfg;
  cfg.clip = 0;
  // Two steps in one process, "saved"; the reference then takes two more on 3-rank gradients.
  Reference ref(c, cfg, 2, 2);
  // Deep copies: ModelWeights share their tensors.
  model::ModelWeights saved_p = model::grad::make_f32_weights(c);
  model::ModelWeights saved_m = model::grad::make_f32_weights(c);
  model::ModelWeights saved_v = model::grad::make_f32_weights(c);
  {
    auto copy = [&](model::ModelWeights& to, model::ModelWeights& from) {
      auto a = model::grad::param_slots(c, to), b = model::grad::param_slots(c, from);
      for (size_t s = 0; s < a.size(); ++s) std::copy_n(b[s].data, b[s].size, a[s].data);
    };
    copy(saved_p, ref.p);
    copy(saved_m, ref.adam->m());
    copy(saved_v, ref.adam->v());
  }
  ThreadPool pool(1);
  for (int t = 2; t < 4; ++t) ref.run_step(c, 3, t, pool);
  on_ranks(3, [&](dist::Communicator& comm) {
    model::ModelWeights p = model::grad::make_f32_weights(c);
    model::ModelWeights g = model::grad::make_f32_weights(c);
    train::ZeroAdamW zero(comm, c, p, g, cfg, 5000);
    auto a = model::grad::param_slots(c, p), b = model::grad::param_slots(c, saved_p);
    for (size_t s = 0; s < a.size(); ++s) std::copy_n(b[s].data, b[s].size, a[s].data);
    zero.take_moments(saved_m, saved_v);
    zero.set_steps(2);
    ThreadPool rank_pool(1);
    for (int t = 2; t < 4; ++t) {
      zero.zero_grad();
      fill_grads(c, g, comm.rank(), t);
      zero.reduce();
      zero.step(1e-2, zero.grad_norm(), rank_pool);
    }
    expect_params_equal(c, p, ref.p, 0, "resumed at 3 ranks");
  });
}

TEST(ZeroAdamW, ClippedStepsStayWithinTheNormsRounding) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  train::AdamWConfig cfg;
  cfg.clip = 1.0;  // binds: the gradients' norm is in the hundreds
  Reference ref(c, cfg, 2, 3);
  ASSERT_GT(ref.norms[0], 10.0);
  on_ranks(2, [&](dist::Communicator& comm) {
    model::ModelWeights p = model::grad::make_f32_weights(c);
    model::ModelWeights g = model::grad::make_f32_weights(c);
    init_params(c, p);
    train::ZeroAdamW zero(comm, c, p, g, cfg, 3000);
    ThreadPool pool(1);
    for (int t = 0; t < 3; ++t) {
      zero.zero_grad();
      fill_grads(c, g, comm.rank(), t);
      zero.reduce();
      zero.step(1e-2, zero.grad_norm(), pool);
    }
    expect_params_equal(c, p, ref.p, 1e-6, "clipped");
  });
}
