// Every backward of the training model against finite differences of its own forward: the
// whole model's objective (main CE + λ·MTP + α·balance, docs/training.md) is differentiated
// along a random direction of each parameter tensor in turn, and the directional derivative
// from the backward must match the central difference. The forward is f32, so the test uses a
// step h = 1e-2 along a unit direction (rounding noise ~ 1e-6·|L|/h ≈ 1e-3 of a typical
// directional derivative) and accepts 3% relative error; routing is checked not to flip
// between the ± evaluations (the selection is a constant in the backward by definition).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/lowp_gemm.h"
#include "model/grad/attention_grad.h"
#include "model/grad/f32_weights.h"
#include "model/grad/linear_grad.h"
#include "model/grad/mlp_grad.h"
#include "model/grad/model_grad.h"
#include "model/grad/moe_grad.h"

using namespace tern;
using namespace tern::model;
using namespace tern::model::grad;

namespace {

nlohmann::json tiny_v3() {
  return {{"architectures", {"DeepseekV3ForCausalLM"}},
          {"model_type", "deepseek_v3"},
          {"hidden_size", 16},
          {"intermediate_size", 24},
          {"moe_intermediate_size", 8},
          {"num_hidden_layers", 2},
          {"first_k_dense_replace", 1},
          {"moe_layer_freq", 1},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 2},
          {"q_lora_rank", 8},
          {"kv_lora_rank", 8},
          {"qk_nope_head_dim", 4},
          {"qk_rope_head_dim", 4},
          {"v_head_dim", 4},
          {"n_routed_experts", 8},
          {"n_shared_experts", 1},
          {"num_experts_per_tok", 2},
          {"n_group", 2},
          {"topk_group", 1},
          {"routed_scaling_factor", 2.5},
          {"scoring_func", "sigmoid"},
          {"topk_method", "noaux_tc"},
          {"norm_topk_prob", true},
          {"num_nextn_predict_layers", 1},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000},
          {"rope_scaling", nullptr},
          {"max_position_embeddings", 64},
          {"vocab_size", 40},
          {"tie_word_embeddings", false},
          {"bos_token_id", 0},
          {"eos_token_id", 1}};
}

nlohmann::json tiny_v2() {
  nlohmann::json j = tiny_v3();
  j["architectures"] = {"DeepseekV2ForCausalLM"};
  j["model_type"] = "deepseek_v2";
  j["q_lora_rank"] = nullptr;
  j["scoring_func"] = "softmax";
  j["topk_method"] = "greedy";
  j["n_group"] = 1;
  j["topk_group"] = 1;
  j["norm_topk_prob"] = false;
  j["routed_scaling_factor"] = 1.0;
  j["num_nextn_predict_layers"] = 0;
  return j;
}

nlohmann::json tiny_qwen2() {
  return {{"architectures", {"Qwen2ForCausalLM"}},
          {"model_type", "qwen2"},
          {"hidden_size", 16},
          {"intermediate_size", 24},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"max_position_embeddings", 64},
          {"vocab_size", 40},
          {"tie_word_embeddings", true},
          {"bos_token_id", 0},
          {"eos_token_id", 1}};
}

void randomise(const ModelConfig& c, ModelWeights& w, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (ParamSlot& p : param_slots(c, w)) {
    if (p.alias) continue;
    const bool norm = p.shape.size() == 1 && p.name.find("correction_bias") == std::string::npos;
    const bool router = p.name.find("mlp.gate.weight") != std::string::npos;
    const float sd = norm ? 0.1f : router ? 0.6f : p.shape.size() == 1 ? 0.01f : 0.3f;
    for (int64_t i = 0; i < p.size; ++i) p.data[i] = (norm ? 1.0f : 0.0f) + sd * nd(rng);
  }
}

struct Batch {
  int64_t B, T;
  std::vector<int32_t> tokens, docs;
};

Batch make_batch(const ModelConfig& c, int64_t B, int64_t T, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t S = window_tokens(c, T);
  Batch b{B, T, std::vector<int32_t>(size_t(B * S)), std::vector<int32_t>(size_t(B * S))};
  for (auto& t : b.tokens) t = int32_t(rng() % uint32_t(c.vocab_size));
  for (int64_t w = 0; w < B; ++w)
    for (int64_t i = 0; i < S; ++i) b.docs[size_t(w * S + i)] = int32_t(i >= S / 2 + w);
  return b;
}

void check_model_gradients(const nlohmann::json& cj, float alpha) {
  const ModelConfig c = ModelConfig::from_json(cj, "test");
  c.validate();
  ModelWeights w = make_f32_weights(c), g = make_f32_weights(c);
  randomise(c, w, 7);
  const Batch batch = make_batch(c, 2, 6, 3);
  ThreadPool pool(2);
  ModelGrad model(c, batch.B, batch.T);
  const TrainBatch tb{batch.B, batch.T, batch.tokens.data(), batch.docs.data()};
  const LossWeights lw{0.3f, alpha, 1.0f};
  const StepResult base = model.step(w, g, tb, lw, pool);
  ASSERT_TRUE(std::isfinite(base.loss));
  EXPECT_GT(base.main_targets, 0);
  std::vector<ParamSlot> ps = param_slots(c, w), gs = param_slots(c, g);
  std::mt19937 rng(11);
  std::normal_distribution<double> nd;
  int checked = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!ps[i].trainable) continue;
    std::vector<double> u(size_t(ps[i].size));
    double norm = 0;
    for (double& x : u) {
      x = nd(rng);
      norm += x * x;
    }
    norm = std::sqrt(norm);
    double analytic = 0;
    for (size_t k = 0; k < u.size(); ++k) analytic += (u[k] /= norm) * gs[i].data[k];
    const std::vector<float> saved(ps[i].data, ps[i].data + ps[i].size);
    auto eval = [&](double h) {
      for (size_t k = 0; k < u.size(); ++k) ps[i].data[k] = float(saved[k] + h * u[k]);
      const StepResult r = model.evaluate(w, tb, lw, pool);
      std::copy(saved.begin(), saved.end(), ps[i].data);
      return r;
    };
    const double h = 1e-2;
    const StepResult plus = eval(h), minus = eval(-h);
    if (plus.expert_counts != base.expert_counts || minus.expert_counts != base.expert_counts) {
      ADD_FAILURE() << ps[i].name << ": routing flipped under the perturbation; pick other weights";
      continue;
    }
    const double fd = (plus.loss - minus.loss) / (2 * h);
    EXPECT_NEAR(analytic, fd, 0.03 * std::fabs(fd) + 2e-4) << ps[i].name;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

}  // namespace

TEST(Grad, V3ModelWithMtpAndBalanceLossMatchesFiniteDifferences) {
  check_model_gradients(tiny_v3(), 0.05f);
}

TEST(Grad, V2ModelSoftmaxRoutingMatchesFiniteDifferences) {
  check_model_gradients(tiny_v2(), 0.05f);
}

TEST(Grad, DenseQwen2GqaWithBiasesAndTiedHeadMatchesFiniteDifferences) {
  check_model_gradients(tiny_qwen2(), 0.0f);
}

TEST(Grad, RecomputationGivesTheSameBits) {
  const ModelConfig c = ModelConfig::from_json(tiny_v3(), "test");
  ModelWeights w = make_f32_weights(c), g1 = make_f32_weights(c), g2 = make_f32_weights(c);
  randomise(c, w, 3);
  const Batch batch = make_batch(c, 2, 6, 9);
  const TrainBatch tb{batch.B, batch.T, batch.tokens.data(), batch.docs.data()};
  ThreadPool pool(2);
  ModelGrad plain(c, 2, 6), recompute(c, 2, 6, true);
  const StepResult a = plain.step(w, g1, tb, {0.3f, 0.05f, 1.0f}, pool);
  const StepResult b = recompute.step(w, g2, tb, {0.3f, 0.05f, 1.0f}, pool);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.expert_counts, b.expert_counts);
  auto s1 = param_slots(c, g1), s2 = param_slots(c, g2);
  for (size_t i = 0; i < s1.size(); ++i)
    for (int64_t k = 0; k < s1[i].size; ++k) ASSERT_EQ(s1[i].data[k], s2[i].data[k]) << s1[i].name;
}

TEST(Grad, AttentionCoreMatchesFiniteDifferencesPerElement) {
  const AttentionShape s{2, 5, 2, 6, 4, 0.4f};
  const int64_t N = s.B * s.T;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> q(size_t(N * s.H * s.dq)), k(q.size()), v(size_t(N * s.H * s.dv));
  std::vector<float> r(v.size()), P(size_t(s.B * s.H * s.T * s.T)), o(v.size());
  for (auto* x : {&q, &k, &v, &r})
    for (float& e : *x) e = nd(rng);
  ThreadPool pool(2);
  auto loss = [&] {
    attention_fwd(s, q.data(), k.data(), v.data(), P.data(), o.data(), pool);
    double l = 0;
    for (size_t i = 0; i < o.size(); ++i) l += double(o[i]) * r[i];
    return l;
  };
  loss();
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  attention_bwd(s, q.data(), k.data(), v.data(), P.data(), r.data(), dq.data(), dk.data(),
                dv.data(), pool);
  for (auto [x, dx] : {std::pair{&q, &dq}, {&k, &dk}, {&v, &dv}})
    for (size_t i = 0; i < x->size(); i += 3) {
      const float keep = (*x)[i];
      const float h = 1e-2f;
      (*x)[i] = keep + h;
      const double lp = loss();
      (*x)[i] = keep - h;
      const double lm = loss();
      (*x)[i] = keep;
      const double fd = (lp - lm) / (2.0 * h);
      // Per element, f32 noise ~ 1e-6·|o|·|r|·N/h: absolute 2e-3.
      EXPECT_NEAR((*dx)[i], fd, 0.02 * std::fabs(fd) + 2e-3) << i;
    }
}

// The bf16 attention that rounds and packs each operand once gives the generic form's bits (the
// same sums in the same order): T across row blocks with a ragged last one, odd T and head dims
// (odd depths), 1 and 2 threads. Fails if a block offset, stride or depth prefix is off.
TEST(Grad, Bf16AttentionPackedOnceEqualsTheGenericForm) {
  if (!attention_packs_once(AttentionShape{1, 1, 1, 2, 2, 1.0f, true}))
    GTEST_SKIP() << "the micro-kernel does not read bf16 rows";
  for (const AttentionShape s :
       {AttentionShape{2, 150, 3, 48, 32, 0.3f, true}, AttentionShape{1, 5, 2, 7, 3, 0.5f, true},
        AttentionShape{2, 64, 1, 20, 17, 0.2f, true}}) {
    for (const int threads : {1, 2}) {
      SCOPED_TRACE("T " + std::to_string(s.T) + " threads " + std::to_string(threads));
      const int64_t N = s.B * s.T;
      std::mt19937 rng(11);
      std::normal_distribution<float> nd;
      std::vector<float> q(size_t(N * s.H * s.dq)), k(q.size()), v(size_t(N * s.H * s.dv));
      std::vector<float> r(v.size());
      for (auto* x : {&q, &k, &v, &r})
        for (float& e : *x) e = nd(rng);
      ThreadPool pool(threads);
      const size_t np = size_t(s.B * s.H * s.T * s.T);
      std::vector<float> P1(np), P2(np), o1(v.size()), o2(v.size());
      attention_fwd_generic(s, q.data(), k.data(), v.data(), P1.data(), o1.data(), pool);
      attention_fwd_bf16(s, q.data(), k.data(), v.data(), P2.data(), o2.data(), pool);
      ASSERT_EQ(P1, P2);
      ASSERT_EQ(o1, o2);
      // NaN-poisoned outputs: every element must be written.
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::vector<float> dq1(q.size()), dk1(k.size()), dv1(v.size());
      std::vector<float> dq2(q.size(), nan), dk2(k.size(), nan), dv2(v.size(), nan);
      attention_bwd_generic(s, q.data(), k.data(), v.data(), P1.data(), r.data(), dq1.data(),
                            dk1.data(), dv1.data(), pool);
      attention_bwd_bf16(s, q.data(), k.data(), v.data(), P1.data(), r.data(), dq2.data(),
                         dk2.data(), dv2.data(), pool);
      ASSERT_EQ(dq1, dq2);
      ASSERT_EQ(dk1, dk2);
      ASSERT_EQ(dv1, dv2);
    }
  }
}

// make_f32_weights lays each MLP's gate and up out as one [2f, d] matrix and the MLP then runs
// them as one GEMM; the same MLP with the two in separate allocations takes the two-GEMM path.
// Both must give the same outputs and gradients: bit for bit where the sums are the same
// (forward, weight gradients), within f32 rounding where the input gradient's K order differs.
TEST(Grad, JointGateUpEqualsSeparateMatrices) {
  const ModelConfig c = ModelConfig::from_json(tiny_v3(), "test");
  for (const bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    ModelWeights w = make_f32_weights(c), g = make_f32_weights(c);
    MlpWeights& wj = w.layers[0].mlp;
    const int64_t f = wj.gate_proj.view.rows, d = wj.gate_proj.view.cols;
    ASSERT_EQ(f32(wj.up_proj), f32(wj.gate_proj) + f * d) << "gate and up not laid out jointly";
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 0.3f);
    static const kernels::LowpSpec spec{};
    for (Linear* l : {&wj.gate_proj, &wj.up_proj, &wj.down_proj}) {
      for (int64_t i = 0; i < l->view.rows * l->view.cols; ++i) f32(*l)[i] = nd(rng);
      l->train_lowp = bf16 ? &spec : nullptr;
    }
    MlpWeights& gj = g.layers[0].mlp;
    for (Linear* l : {&gj.gate_proj, &gj.up_proj, &gj.down_proj})
      l->train_lowp = bf16 ? &spec : nullptr;
    const auto separate = [](const MlpWeights& m) {
      MlpWeights s = m;
      for (Linear* l : {&s.gate_proj, &s.up_proj, &s.down_proj}) {
        l->data = l->data.clone();
        l->view.data = l->data.data();
      }
      return s;
    };
    const MlpWeights ws = separate(wj);
    MlpWeights gs = separate(gj);
    const int64_t N = 37;
    std::vector<float> x(size_t(N * d)), dy(size_t(N * d));
    for (float& v : x) v = nd(rng);
    for (float& v : dy) v = nd(rng);
    ThreadPool pool(2);
    MlpSaved sj, ss;
    std::vector<float> yj(size_t(N * d)), ys(size_t(N * d)), dxj(size_t(N * d)), dxs(size_t(N * d));
    mlp_fwd(wj, x.data(), N, yj.data(), sj, pool);
    mlp_fwd(ws, x.data(), N, ys.data(), ss, pool);
    EXPECT_EQ(yj, ys);
    mlp_bwd(wj, gj, x.data(), dy.data(), N, dxj.data(), false, sj, pool);
    mlp_bwd(ws, gs, x.data(), dy.data(), N, dxs.data(), false, ss, pool);
    for (int64_t i = 0; i < N * d; ++i)
      ASSERT_NEAR(dxj[size_t(i)], dxs[size_t(i)], 1e-5f * (1.0f + std::fabs(dxs[size_t(i)]))) << i;
    for (auto [a, b] : {std::pair{&gj.gate_proj, &gs.gate_proj},
                        {&gj.up_proj, &gs.up_proj},
                        {&gj.down_proj, &gs.down_proj}})
      for (int64_t i = 0; i < f * d; ++i) ASSERT_EQ(f32(*a)[i], f32(*b)[i]) << i;
  }
}

// The whole model with every joint pair (MLA's q_a / kv_a, each MLP's gate / up) split into
// separate allocations takes the two-GEMM paths; the loss is the same bits (the forward's sums
// do not change) and every gradient agrees to f32 rounding.
TEST(Grad, JointProjectionsEqualSeparateOnesThroughTheModel) {
  const ModelConfig c = ModelConfig::from_json(tiny_v3(), "test");
  ModelWeights w = make_f32_weights(c), g = make_f32_weights(c);
  ASSERT_EQ(f32(w.layers[0].mla.kv_a_proj_with_mqa),
            f32(w.layers[0].mla.q_a_proj) + w.layers[0].mla.q_a_proj.view.rows * c.hidden_size);
  randomise(c, w, 4);
  const auto split = [](ModelWeights m) {
    const auto apart = [](Linear& l) {
      if (!l.present()) return;
      l.data = l.data.clone();
      l.view.data = l.data.data();
    };
    const auto layer = [&](LayerWeights& l) {
      apart(l.mla.q_a_proj);
      apart(l.mla.kv_a_proj_with_mqa);
      for (MlpWeights* p : {&l.mlp, &l.moe.shared_experts}) apart(p->up_proj);
      for (MlpWeights& e : l.moe.experts) apart(e.up_proj);
    };
    for (LayerWeights& l : m.layers) layer(l);
    for (MtpWeights& t : m.mtp) layer(t.block);
    return m;
  };
  ModelWeights ws = split(w), gs = split(g);
  ASSERT_NE(f32(ws.layers[0].mla.kv_a_proj_with_mqa), f32(w.layers[0].mla.kv_a_proj_with_mqa));
  const Batch batch = make_batch(c, 2, 6, 5);
  const TrainBatch tb{batch.B, batch.T, batch.tokens.data(), batch.docs.data()};
  ThreadPool pool(2);
  ModelGrad joint(c, 2, 6), separate(c, 2, 6);
  const StepResult a = joint.step(w, g, tb, {0.3f, 0.05f, 1.0f}, pool);
  const StepResult b = separate.step(ws, gs, tb, {0.3f, 0.05f, 1.0f}, pool);
  EXPECT_EQ(a.loss, b.loss);
  const std::vector<ParamSlot> pj = param_slots(c, g), ps = param_slots(c, gs);
  ASSERT_EQ(pj.size(), ps.size());
  for (size_t i = 0; i < pj.size(); ++i)
    for (int64_t k = 0; k < pj[i].size; ++k)
      ASSERT_NEAR(pj[i].data[k], ps[i].data[k], 1e-5f * (1.0f + std::fabs(ps[i].data[k])))
          << pj[i].name << " [" << k << "]";
}

// The routed experts keep their saved activations in one per-layer region sized by N·K rows, so
// the per-expert row counts, which move with every step's routing, never reallocate it (growing
// per-expert buffers cost page faults and copies in the first hundreds of steps); and reusing
// the saved state gives the same bits as a fresh one.
TEST(Grad, MoeStepsWithNewRoutingReuseTheExpertStore) {
  const ModelConfig c = ModelConfig::from_json(tiny_v3(), "test");
  ModelWeights w = make_f32_weights(c), g = make_f32_weights(c);
  randomise(c, w, 11);
  const MoeWeights& moe = w.layers[1].moe;
  ThreadPool pool(2);
  const MoeContext ctx{&c, 2, 7, 0.01f, &pool, nullptr};
  const int64_t N = ctx.B * ctx.T, d = c.hidden_size;
  MoeSaved reused;
  const float* store = nullptr;
  std::vector<int64_t> first_counts;
  for (uint32_t seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> x(size_t(N * d)), dy(x.size());
    for (float& v : x) v = nd(rng);
    for (float& v : dy) v = nd(rng);
    std::vector<float> y1(x.size()), y2(x.size()), dx1(x.size()), dx2(x.size());
    MoeSaved fresh;
    moe_fwd(ctx, moe, x.data(), y1.data(), reused);
    moe_fwd(ctx, moe, x.data(), y2.data(), fresh);
    EXPECT_EQ(y1, y2);
    if (!store) {
      store = reused.expert_gates.data();
      first_counts = reused.counts;
    }
    EXPECT_EQ(reused.expert_gates.data(), store) << "seed " << seed;
    moe_bwd(ctx, moe, g.layers[1].moe, x.data(), dy.data(), dx1.data(), reused);
    moe_bwd(ctx, moe, g.layers[1].moe, x.data(), dy.data(), dx2.data(), fresh);
    EXPECT_EQ(dx1, dx2);
    if (seed == 3) {
      EXPECT_NE(reused.counts, first_counts) << "the routing should have moved";
    }
  }
}
