// A training step in its steady state allocates nothing (issue #16): every operator new is
// counted while a step runs, after warm-up steps have sized the saved activations and the
// threads' workspaces. The whole step: forward, backward (MoE with routed and shared experts,
// MLA, MTP, both heads), the gradient norm and the AdamW update, at f32 and bf16, on one
// thread (where each piece runs is then fixed, so each thread's scratch has seen its largest
// shape). Only the step's result allocates: its per-layer expert counts. Its own binary: it
// replaces the global operator new. TERN_TEST_ALLOC_TRACE=1 prints a backtrace of each allocation
// counted, to find the code that made it.
#include <execinfo.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/grad/model_grad.h"
#include "tests/train/small_moe_config.h"
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

long allocations_in_a_step(const std::string& precision) {
  const model::ModelConfig c = test::small_moe_config();
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
