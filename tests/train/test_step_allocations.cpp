// A training step in its steady state allocates nothing (issue #16): every operator new is
// counted while a step runs, after warm-up steps have sized the saved activations and the
// threads' workspaces. The whole step: forward, backward (MoE with routed and shared experts,
// MLA, MTP, both heads), the gradient norm and the AdamW update, at f32 and bf16, on one
// thread (where each piece runs is then fixed, so each thread's scratch has seen its largest
// shape). Only the step's result allocates: its per-layer expert counts. Its own binary: it replaces the global operator new. TERN_TEST_ALLOC_TRACE=1 prints
// a backtrace of each allocation counted, to find the code that made it.
#include <execinfo.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>
#include <random>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/grad/model_grad.h"
#include "train/adamw.h"
#include "train/precision.h"

// The replacements below free() what their operator new malloc()ed.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {

std::atomic<bool> g_armed{false};
std::atomic<long> g_allocations{0};

void* counted(std::size_t n, std::size_t align) {
  if (g_armed.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1);
    if (std::getenv("TERN_TEST_ALLOC_TRACE")) {
      g_armed = false;  // backtrace itself may allocate
      void* frames[24];
      backtrace_symbols_fd(frames, backtrace(frames, 24), 2);
      g_armed = true;
    }
  }
  void* p = align > alignof(std::max_align_t)
                ? std::aligned_alloc(align, (n + align - 1) / align * align)
                : std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t n) {
  return counted(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return counted(n, std::size_t(a));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

using namespace tern;

namespace {

model::ModelConfig config() {
  const nlohmann::json j = {{"architectures", {"DeepseekV3ForCausalLM"}},
                            {"model_type", "deepseek_v3"},
                            {"hidden_size", 128},
                            {"intermediate_size", 192},
                            {"moe_intermediate_size", 64},
                            {"num_hidden_layers", 2},
                            {"first_k_dense_replace", 1},
                            {"moe_layer_freq", 1},
                            {"num_attention_heads", 2},
                            {"num_key_value_heads", 2},
                            {"q_lora_rank", 64},
                            {"kv_lora_rank", 32},
                            {"qk_nope_head_dim", 16},
                            {"qk_rope_head_dim", 8},
                            {"v_head_dim", 16},
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
                            {"max_position_embeddings", 128},
                            {"vocab_size", 256},
                            {"tie_word_embeddings", false}};
  return model::ModelConfig::from_json(j, "test");
}

long allocations_in_a_step(const std::string& precision) {
  const model::ModelConfig c = config();
  model::ModelWeights w = model::grad::make_f32_weights(c), g = model::grad::make_f32_weights(c);
  model::grad::init_random(c, w, 7, 0.05);
  const auto recipe = train::PrecisionRecipe::make(precision, false, "f32");
  recipe.apply(c, w);
  recipe.apply(c, g);
  const int64_t B = 2, T = 64, S = model::grad::window_tokens(c, T);
  std::mt19937 rng(4);
  std::vector<int32_t> tokens(size_t(B * S)), docs(size_t(B * S), 0);
  ThreadPool pool(1);
  model::grad::ModelGrad net(c, B, T);
  train::AdamW adam(c, w, g, {});
  long counted = 0;
  for (int step = 0; step < 4; ++step) {
    for (auto& t : tokens) t = int32_t(rng() % 256);
    const bool measured = step == 3;
    g_allocations = 0;
    g_armed = measured;
    const model::grad::StepResult r =
        net.step(w, g, {B, T, tokens.data(), docs.data()}, {0.3f, 1e-4f, 1.0f}, pool);
    adam.step(1e-3, adam.grad_norm(), pool, true);
    g_armed = false;
    // The result's own: its list of per-layer expert counts and one row per MoE layer.
    if (measured) counted = g_allocations - long(1 + r.expert_counts.size());
  }
  return counted;
}

}  // namespace

TEST(StepAllocations, ASteadyStateStepAllocatesNothing) {
  for (const char* precision : {"fp32", "bf16"})
    EXPECT_EQ(allocations_in_a_step(precision), 0) << precision;
}
