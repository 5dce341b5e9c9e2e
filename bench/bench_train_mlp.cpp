// The training SwiGLU MLP (forward + backward) at train-small-v3's shapes — a dense layer
// (2,048 tokens, d 256, width 768) and a routed expert (512 tokens, width 128) — with gate and
// up in one [2f, d] allocation (make_f32_weights' layout: one GEMM for both) or in two (two
// GEMMs each pass), in bf16. Reported in GFLOP/s of the nine GEMMs' arithmetic; run with random
// interleaving so the two layouts alternate and a loaded host moves both alike.
//
//   build/release/bench/bench_train_mlp --benchmark_repetitions=8
//       --benchmark_enable_random_interleaving=true
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/lowp_gemm.h"
#include "model/grad/linear_grad.h"
#include "model/grad/mlp_grad.h"

using namespace tern;
using namespace tern::model;
using namespace tern::model::grad;

namespace {

Linear matrix(float* p, int64_t rows, int64_t cols, const kernels::LowpSpec* spec) {
  Linear l;
  l.data = Tensor(DType::f32, {rows, cols}, p);
  l.view.dtype = DType::f32;
  l.view.rows = rows;
  l.view.cols = cols;
  l.view.data = p;
  l.train_lowp = spec;
  return l;
}

// Weights or gradients: gate and up adjacent (joint) or apart (a gap between them).
struct Mlp {
  std::vector<float> store;
  MlpWeights w;
  Mlp(int64_t d, int64_t f, bool joint, const kernels::LowpSpec* spec)
      : store(size_t(3 * f * d + (joint ? 0 : 16))) {
    std::mt19937 rng(1);
    std::normal_distribution<float> n(0.0f, 0.05f);
    for (float& v : store) v = n(rng);
    float* p = store.data();
    w.gate_proj = matrix(p, f, d, spec);
    w.up_proj = matrix(p + f * d + (joint ? 0 : 16), f, d, spec);
    w.down_proj = matrix(p + 2 * f * d + (joint ? 0 : 16), d, f, spec);
  }
};

void run(benchmark::State& st, bool joint) {
  const int64_t N = st.range(0), d = 256, f = st.range(1);
  static const kernels::LowpSpec spec{};
  Mlp w(d, f, joint, &spec), g(d, f, joint, &spec);
  std::mt19937 rng(2);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(N * d)), dy(size_t(N * d)), y(size_t(N * d)), dx(size_t(N * d));
  for (float& v : x) v = n(rng);
  for (float& v : dy) v = n(rng);
  MlpSaved s;
  ThreadPool& pool = ThreadPool::global();
  for (auto _ : st) {
    mlp_fwd(w.w, x.data(), N, y.data(), s, pool);
    mlp_bwd(w.w, g.w, x.data(), dy.data(), N, dx.data(), false, s, pool);
    benchmark::DoNotOptimize(dx.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(9 * 2.0 * double(N * d * f),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({2048, 768})->Args({512, 128})->Args({2048, 128})->UseRealTime();
}

BENCHMARK_CAPTURE(run, separate, false)->Apply(shapes);
BENCHMARK_CAPTURE(run, joint, true)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
