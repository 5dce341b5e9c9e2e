// Pipeline parallelism on the tiny V3 config (dense and MoE layers, an MTP module): ModelGrad's
// stages chained by hand give the whole-model gradients bit for bit, deferred weight gradients
// (zero-bubble W) too; PipelineRunner on the in-process communicator, one thread per stage, with
// 1F1B on 2 and 3 stages and DualPipe on 2, gives gradients that, summed over ranks, equal one
// process's on the whole batch to 1e-5 relative, with the same losses and expert loads.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/grad/linear_grad.h"
#include "model/grad/model_grad.h"
#include "tests/dist/on_ranks.h"
#include "train/data_parallel.h"
#include "train/pipeline_costs.h"
#include "train/pipeline_runner.h"
#include "train/stage_grads.h"
#include "train/stage_placement.h"

using namespace tern;
using tern::dist::test::on_ranks;

namespace {

const std::string kConfig = std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3/config.json";

struct Fixture {
  model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  int64_t B = 4, T = 12, S = model::grad::window_tokens(c, T);
  std::vector<int32_t> tokens, docs;
  model::ModelWeights w = model::grad::make_f32_weights(c);
  Fixture() {
    for (int64_t i = 0; i < B * S; ++i) {
      tokens.push_back(int32_t((i * 37 + 11) % c.vocab_size));
      docs.push_back(int32_t(i / S) * 2 + (i % S > S / 2));  // a boundary inside each window
    }
    model::grad::init_random(c, w, 11, 0.05);
  }
  model::grad::TrainBatch batch(int64_t first, int64_t n) const {
    return {n, T, tokens.data() + first * S, docs.data() + first * S};
  }
};

// max |a - b| over every trainable slot, relative to the slot's largest |b| (0: bit-identical).
double worst_difference(const model::ModelConfig& c, model::ModelWeights& a, model::ModelWeights& b,
                        std::string* where) {
  const auto sa = model::grad::param_slots(c, a), sb = model::grad::param_slots(c, b);
  double worst = 0;
  for (size_t k = 0; k < sa.size(); ++k) {
    if (!sa[k].trainable || sa[k].alias) continue;
    double scale = 1e-30, diff = 0;
    for (int64_t i = 0; i < sa[k].size; ++i) {
      scale = std::max(scale, double(std::fabs(sb[k].data[i])));
      diff = std::max(diff, double(std::fabs(sa[k].data[i] - sb[k].data[i])));
    }
    if (diff / scale > worst) worst = diff / scale, *where = sa[k].name;
  }
  return worst;
}

}  // namespace

TEST(PipelineStages, ChainedStagesGiveTheWholeModelsGradientsBitForBit) {
  Fixture f;
  const model::grad::LossWeights lw{0.3f, 1e-2f, 1.0f};
  ThreadPool pool(1);
  for (bool recompute : {false, true})
    for (bool defer : {false, true}) {
      model::ModelWeights want = model::grad::make_f32_weights(f.c);
      model::grad::ModelGrad one(f.c, f.B, f.T, recompute);
      const model::grad::StepResult r1 = one.step(f.w, want, f.batch(0, f.B), lw, pool);
      // Three stages of one layer each, activations passed by hand.
      model::ModelWeights got = model::grad::make_f32_weights(f.c);
      std::vector<std::unique_ptr<model::grad::ModelGrad>> stages;
      const int64_t L = f.c.num_hidden_layers, n = f.B * f.T * f.c.hidden_size;
      std::vector<std::vector<float>> h(size_t(L + 1), std::vector<float>(size_t(n)));
      model::grad::StepResult sum;
      for (int64_t s = 0; s < L; ++s) {
        stages.push_back(std::make_unique<model::grad::ModelGrad>(f.c, f.B, f.T, recompute));
        stages.back()->set_stage(s, s + 1);
        const model::grad::StepResult r = stages.back()->forward_stage(
            f.w, got, f.batch(0, f.B), lw, s > 0 ? h[size_t(s)].data() : nullptr,
            h[size_t(s + 1)].data(), pool);
        sum.loss += r.loss, sum.main += r.main, sum.mtp += r.mtp, sum.balance += r.balance;
        if (sum.expert_counts.empty())
          sum.expert_counts = r.expert_counts;
        else
          for (size_t l = 0; l < r.expert_counts.size(); ++l)
            for (size_t e = 0; e < r.expert_counts[l].size(); ++e)
              sum.expert_counts[l][e] += r.expert_counts[l][e];
      }
      EXPECT_EQ(sum.main, r1.main);
      EXPECT_EQ(sum.mtp, r1.mtp);
      EXPECT_EQ(sum.expert_counts, r1.expert_counts);
      EXPECT_NEAR(sum.loss, r1.loss, 1e-12 * std::fabs(r1.loss));
      std::vector<float> dh(static_cast<size_t>(n)), dh_next(static_cast<size_t>(n));
      model::grad::WeightGradDeferral later;
      for (int64_t s = L - 1; s >= 0; --s) {
        const model::grad::DeferWeightGrads scope(defer ? &later : nullptr);
        stages[size_t(s)]->backward_stage(f.w, got, s < L - 1 ? dh.data() : nullptr,
                                          s > 0 ? dh_next.data() : nullptr, pool);
        std::swap(dh, dh_next);
      }
      EXPECT_EQ(later.empty(), !defer);
      if (defer) {
        EXPECT_GT(later.held_bytes(), 0);
      }
      later.run(pool);
      std::string where;
      EXPECT_EQ(worst_difference(f.c, got, want, &where), 0.0)
          << where << (recompute ? " recompute" : "") << (defer ? " deferred W" : "");
    }
}

TEST(PipelineRunner, SummedGradientsEqualTheOneProcessStep) {
  Fixture f;
  model::grad::LossWeights lw{0.3f, 1e-2f, 1.0f};
  lw.targets = double(train::count_targets(f.docs.data(), f.B, f.S, f.T));
  ThreadPool pool(1);
  model::ModelWeights want = model::grad::make_f32_weights(f.c);
  model::grad::ModelGrad one(f.c, f.B, f.T);
  const model::grad::StepResult r1 = one.step(f.w, want, f.batch(0, f.B), lw, pool);
  struct Case {
    int stages;
    const char* schedule;
    int micro;
  };
  for (const Case k : {Case{2, "1f1b", 4}, Case{3, "1f1b", 2}, Case{2, "dualpipe", 4}}) {
    on_ranks(k.stages, [&](dist::Communicator& comm) {
      const std::string what = std::string(k.schedule) + " on " + std::to_string(k.stages);
      ThreadPool rank_pool(1);
      train::PipelineRunner runner(comm, f.c, k.schedule, k.micro, f.B, f.T, false);
      model::ModelWeights g = model::grad::make_f32_weights(f.c);
      model::grad::LossWeights mlw = lw;
      mlw.balance_alpha /= float(k.micro);
      for (int rep = 0; rep < 2; ++rep) {  // twice: the second reuses every buffer
        for (const auto& p : model::grad::param_slots(f.c, g)) std::fill_n(p.data, p.size, 0.0f);
        model::grad::StepResult r =
            runner.step(f.w, g, f.tokens.data(), f.docs.data(), mlw, rank_pool);
        train::GradientReducer reducer(comm, f.c, g, 1 << 20);
        reducer.sum();
        std::vector<double> numbers = {r.main, r.mtp, r.balance};
        train::reduce_step_numbers(comm, numbers, r.expert_counts);
        EXPECT_NEAR(numbers[0], r1.main, 1e-6 * r1.main) << what;
        EXPECT_NEAR(numbers[1], r1.mtp, 1e-6 * r1.mtp) << what;
        EXPECT_NEAR(numbers[2] / k.micro, r1.balance, 1e-6 * r1.balance) << what;
        EXPECT_EQ(r.expert_counts, r1.expert_counts) << what;
        std::string where;
        EXPECT_LE(worst_difference(f.c, g, want, &where), 1e-5) << where << ", " << what;
      }
      // In-process sends complete when issued, so each new send finds the last one done: a rank
      // holds one outgoing buffer, not one per micro-batch.
      EXPECT_EQ(runner.last_timing().peak_sends_held, 1) << what;
      const train::PipelineRunner::Check ch = runner.check_simulation();
      EXPECT_GT(ch.measured, 0);
      EXPECT_GT(ch.simulated, 0);
      EXPECT_EQ(int(ch.stages.size()), k.stages);
    });
  }
}

// Who holds what: a stage's layers on its rank (both of DualPipe's), the embedding on the first
// stage and, since the MTP module reads it, on the last, the head, final norm and MTP module on
// the last; the holders' shares add up to the model with only the embedding counted twice.
TEST(StagePlacement, EachTensorLivesWithTheStagesThatRunIt) {
  model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  c.num_hidden_layers = 6;
  const train::PipeSchedule one_f = train::make_pipe_schedule("1f1b", 3, 3);
  const train::StagePlacement p(c, one_f, 1);
  EXPECT_EQ(p.holders("model.layers.0.self_attn.o_proj.weight"), std::vector<int>{0});
  EXPECT_EQ(p.holders("model.layers.2.mlp.experts.3.up_proj.weight"), std::vector<int>{1});
  EXPECT_EQ(p.holders("model.layers.5.input_layernorm.weight"), std::vector<int>{2});
  EXPECT_EQ(p.holders("model.layers.6.eh_proj.weight"), std::vector<int>{2});  // MTP
  EXPECT_EQ(p.holders("model.embed_tokens.weight"), (std::vector<int>{0, 2}));
  EXPECT_EQ(p.holders("model.norm.weight"), std::vector<int>{2});
  EXPECT_EQ(p.holders("lm_head.weight"), std::vector<int>{2});
  EXPECT_TRUE(p.holds("model.layers.3.mlp.gate.weight"));
  EXPECT_FALSE(p.holds("model.embed_tokens.weight"));
  EXPECT_THROW(p.holders("model.rotary.weight"), Error);
  model::ModelConfig plain = c;
  plain.num_nextn_predict_layers = 0;
  EXPECT_EQ(train::StagePlacement(plain, one_f, 0).holders("model.embed_tokens.weight"),
            std::vector<int>{0});
  const train::PipeSchedule dual = train::make_pipe_schedule("dualpipe", 4, 8);
  const train::StagePlacement d(c, dual, 0);
  EXPECT_EQ(d.holders("model.layers.2.mlp.gate.weight"), (std::vector<int>{1, 2}));  // stage 1
  EXPECT_EQ(d.holders("lm_head.weight"), (std::vector<int>{0, 3}));
  EXPECT_EQ(d.holders("model.embed_tokens.weight"), (std::vector<int>{0, 3}));

  int64_t total = 0, held = 0, embedding = 0;
  model::ModelWeights whole = model::grad::make_f32_weights(c);
  for (const auto& s : model::grad::param_slots(c, whole))
    if (s.trainable) {
      total += s.size;
      if (s.name == "model.embed_tokens.weight") embedding = s.size;
    }
  for (int r = 0; r < 3; ++r) {
    const train::StagePlacement at(c, one_f, r);
    model::ModelWeights mine = model::grad::make_f32_weights(
        c, nullptr, [&](const std::string& name) { return at.holds(name); });
    int64_t n = 0, allocated = 0;
    for (const auto& s : model::grad::param_slots(c, mine)) {
      if (!s.alias) allocated += s.size;
      // (An MTP module's view of the embedding is there wherever the embedding is.)
      if (!s.alias) {
        EXPECT_EQ(s.elsewhere, !at.holds(s.name)) << s.name;
      }
      if (s.trainable) n += s.size;
    }
    EXPECT_LT(n, total) << "rank " << r;
    // What the memory check counts before allocating: the same values.
    EXPECT_EQ(model::grad::f32_weight_count(
                  c, nullptr, [&](const std::string& name) { return at.holds(name); }),
              allocated)
        << "rank " << r;
    held += n;
  }
  EXPECT_EQ(held, total + embedding);
}

// Stage-local weights end to end on the in-process communicator: each rank allocates only its
// stages' tensors, runs its stages, and StageGradReducer sums each tensor over its holders
// (across pipelines too); every held gradient then equals one process's on the whole batch.
TEST(StageGradReducer, HoldersSumToTheOneProcessGradients) {
  Fixture f;
  model::grad::LossWeights lw{0.3f, 1e-2f, 1.0f};
  lw.targets = double(train::count_targets(f.docs.data(), f.B, f.S, f.T));
  ThreadPool pool(1);
  model::ModelWeights want = model::grad::make_f32_weights(f.c);
  model::grad::ModelGrad one(f.c, f.B, f.T);
  one.step(f.w, want, f.batch(0, f.B), lw, pool);
  struct Case {
    int stages, pipelines;
    const char* schedule;
    bool experts_split;  // expert groups of the pipelines at each stage (--pp with --ep)
  };
  for (const Case k : {Case{2, 1, "1f1b", false}, Case{3, 1, "1f1b", false},
                       Case{2, 2, "1f1b", false}, Case{2, 2, "1f1b", true}}) {
    on_ranks(k.stages * k.pipelines, [&](dist::Communicator& world) {
      const std::string what = std::to_string(k.pipelines) + " x " + std::to_string(k.stages) +
                               (k.experts_split ? " with expert groups" : "");
      ThreadPool rank_pool(1);
      const int pipeline = world.rank() / k.stages;
      const auto pp = world.split(pipeline, world.rank() % k.stages);
      const int64_t local = f.B / k.pipelines, micro = local;
      train::PipelineRunner runner(*pp, f.c, k.schedule, int(micro), local, f.T, false);
      const auto peers = world.split(pp->rank(), pipeline);  // this position's replicas
      const model::ExpertParallel ep{k.experts_split ? peers.get() : nullptr};
      runner.set_expert_parallel(ep);
      const train::StagePlacement at(f.c, runner.schedule(), pp->rank());
      const auto held = [&](const std::string& name) { return at.holds(name); };
      model::ModelWeights w = model::grad::make_f32_weights(f.c, &ep, held);
      model::ModelWeights g = model::grad::make_f32_weights(f.c, &ep, held);
      const auto from = model::grad::param_slots(f.c, f.w);
      const auto to = model::grad::param_slots(f.c, w);
      for (size_t i = 0; i < to.size(); ++i)
        if (to[i].data && !to[i].alias) std::copy_n(from[i].data, to[i].size, to[i].data);
      train::StageGradReducer reducer(world, f.c, at, g, 1 << 20, &ep);
      model::grad::LossWeights mlw = lw;
      mlw.balance_alpha /= float(micro * k.pipelines);
      const int64_t first = pipeline * local * f.S;
      runner.step(w, g, f.tokens.data() + first, f.docs.data() + first, mlw, rank_pool);
      reducer.sum();
      const auto got = model::grad::param_slots(f.c, g);
      const auto ref = model::grad::param_slots(f.c, want);
      int64_t checked = 0, experts = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        if (!got[i].trainable || got[i].alias) continue;
        double scale = 1e-30, diff = 0;
        for (int64_t j = 0; j < got[i].size; ++j) {
          scale = std::max(scale, double(std::fabs(ref[i].data[j])));
          diff = std::max(diff, double(std::fabs(got[i].data[j] - ref[i].data[j])));
        }
        EXPECT_LE(diff / scale, 1e-5) << got[i].name << ", " << what;
        ++checked;
        experts += model::grad::routed_expert_slot(got[i].name);
      }
      EXPECT_GT(checked, 0) << what;
      // Split: each rank holds half of its MoE layers' experts (8 per layer here).
      if (k.experts_split && pp->rank() == 1) {
        EXPECT_EQ(experts, 3 * 4 * 3) << what;  // layers 1-2 and the MTP module
      }
      EXPECT_GE(reducer.groups(), k.pipelines > 1 ? 1 : 0) << what;
    });
  }
}

TEST(PipelineRunner, ShapesThatDoNotFitAreRefusedByName) {
  Fixture f;
  on_ranks(2, [&](dist::Communicator& comm) {
    auto make = [&](const char* schedule, int micro) {
      train::PipelineRunner r(comm, f.c, schedule, micro, 4, f.T, false);
    };
    EXPECT_THROW(make("1f1b", 3), Error);      // 3 micro-batches do not divide 4 windows
    EXPECT_THROW(make("dualpipe", 2), Error);  // DualPipe needs 2 x stages micro-batches
  });
  on_ranks(4, [&](dist::Communicator& comm) {  // 3 layers cannot make 4 stages
    EXPECT_THROW(train::PipelineRunner(comm, f.c, std::string("1f1b"), 4, 4, f.T, false), Error);
  });
}

TEST(PipelineCosts, EveryLayerGetsItsKindsMeasuredForwardBackwardAndWeight) {
  Fixture f;
  // The ends are a difference of two clocked runs (a one-layer model with its head, less the
  // layer alone), which a loaded host can push to zero once (seen in CI while other jobs ran):
  // measured again, up to three times, before calling it missing.
  train::ChunkMeasurement m = train::measure_layer_costs(f.c, 2, 8, 1, 3);
  for (int again = 0; again < 2 && m.ends.forward <= 0; ++again)
    m = train::measure_layer_costs(f.c, 2, 8, 1, 3);
  ASSERT_EQ(int64_t(m.layers.size()), f.c.num_hidden_layers);
  EXPECT_EQ(m.tokens, 16);
  EXPECT_EQ(m.hand_off_bytes, 16 * f.c.hidden_size * 4);
  for (int64_t l = 0; l < f.c.num_hidden_layers; ++l) {
    const train::LayerCosts& k = m.layers[size_t(l)];
    EXPECT_GT(k.forward, 0);
    EXPECT_GT(k.backward, 0);
    EXPECT_GT(k.weight, 0) << "the weight-gradient GEMMs are clocked";
    // Layers of one kind share one measurement (layer 0 is dense, 1 and 2 MoE here).
    if (l > 1) {
      EXPECT_EQ(k.forward, m.layers[1].forward);
    }
  }
  EXPECT_GT(m.ends.forward, 0) << "the head, its loss and the MTP module";
  // Stages as the runner splits 3 layers: one each, the ends on the last; the chunk their mean.
  const std::vector<train::ChunkCosts> st = m.stages(3);
  ASSERT_EQ(st.size(), 3u);
  EXPECT_EQ(st[0].forward, m.layers[0].forward);
  EXPECT_EQ(st[2].forward, m.layers[2].forward + m.ends.forward);
  EXPECT_EQ(st[2].weight, m.layers[2].weight + m.ends.weight);
  const train::ChunkCosts c = m.chunk(3);
  EXPECT_NEAR(c.forward * 3, st[0].forward + st[1].forward + st[2].forward, 1e-12);
  EXPECT_THROW(train::measure_layer_costs(f.c, 1, f.c.max_position_embeddings + 1, 1, 3), Error);
}
