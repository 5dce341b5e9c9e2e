// The training GEMMs at the shapes of train-small-v3 (B8 x T256 = 2048 tokens, d = 256): the
// forward (x·Wᵀ), input gradient (dy·W) and weight gradient (dyᵀ·x) in f32, bf16 and E4M3
// (lowp_gemm.h; bf16 also as the step runs them: row-blocked, and from dy rounded once), reported
// in GFLOP/s with packing included, next to the measured peaks of the FMA and bf16 dot-product
// units (so the figures read as a fraction of peak).
//
//   build/release/bench/bench_train_gemm [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "account/cpu_probe.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/lowp_gemm.h"

using namespace tern;
using namespace tern::kernels;

namespace {

enum Pass { kForward, kInputGrad, kWeightGrad };

void run(benchmark::State& st, int precision, Pass pass) {
  const int64_t T = 2048, rows = st.range(0), cols = st.range(1);
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(T * cols)), w(size_t(rows * cols)), dy(size_t(T * rows));
  std::vector<float> out(size_t(std::max(T * std::max(rows, cols), rows * cols)));
  for (auto* v : {&x, &w, &dy})
    for (float& f : *v) f = n(rng);
  GemmParams p;
  if (pass == kForward)
    p = {T, rows, cols, x.data(), cols, false, w.data(), cols, true, out.data(), rows, false};
  if (pass == kInputGrad)
    p = {T, cols, rows, dy.data(), rows, false, w.data(), cols, false, out.data(), cols, false};
  if (pass == kWeightGrad)
    p = {rows, cols, T, dy.data(), rows, true, x.data(), cols, false, out.data(), cols, true};
  LowpSpec spec;
  if (precision == 2) {
    spec.format = LowpFormat::e4m3;
    spec.b_group = pass == kWeightGrad ? Fp8Group::tile : Fp8Group::block;
  }
  ThreadPool& pool = ThreadPool::global();
  // precision 4: bf16 through the row-block driver (the step's form of x·Wᵀ and of f32-dy input
  // gradients). precision 3: bf16 with dy rounded once beforehand (Bf16Grad in the step): its
  // rows are A of the input gradient, its pairs (dyᵀ) A of the weight gradient.
  std::vector<uint32_t> words;
  LowpRowsA pre{};
  if (precision == 3) {
    const int64_t rows_stride = (rows + 1) / 2 + 16, pairs_stride = (T + 1) / 2 + 16;
    const int64_t pad = kLowpRowsPad;
    words.assign(size_t((T + pad) * rows_stride + (rows + pad) * pairs_stride), 0u);
    uint32_t* pairs = words.data() + (T + pad) * rows_stride;
    lowp_bf16_layouts(
        {dy.data(), rows, rows, 0, T, words.data(), rows_stride, pairs, pairs_stride});
    pre =
        pass == kWeightGrad ? LowpRowsA{pairs, pairs_stride} : LowpRowsA{words.data(), rows_stride};
  }
  for (auto _ : st) {
    if (precision == 0)
      gemm(p, &pool);
    else if (precision == 3)
      gemm_lowp_rows_a(p, pre, spec, &pool);
    else if (precision == 4)  // the training step's form of an f32-A product (linear_grad.cpp)
      gemm_lowp_row_blocks(
          p, spec, 64, [](int64_t, int64_t, float*) {}, &pool);
    else
      gemm_lowp(p, spec, &pool);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(T * rows * cols),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void args(benchmark::internal::Benchmark* b) {
  b->Args({4096, 256})
      ->Args({768, 256})
      ->Args({256, 768})
      ->Args({128, 256})
      ->Unit(benchmark::kMillisecond);
}

#define TRAIN_GEMM(name, prec, pass) \
  void name(benchmark::State& st) {  \
    run(st, prec, pass);             \
  }                                  \
  BENCHMARK(name)->Apply(args);
TRAIN_GEMM(f32_forward, 0, kForward)
TRAIN_GEMM(f32_input_grad, 0, kInputGrad)
TRAIN_GEMM(f32_weight_grad, 0, kWeightGrad)
TRAIN_GEMM(bf16_forward, 1, kForward)
TRAIN_GEMM(bf16_input_grad, 1, kInputGrad)
TRAIN_GEMM(bf16_weight_grad, 1, kWeightGrad)
TRAIN_GEMM(bf16_row_blocks_forward, 4, kForward)
TRAIN_GEMM(bf16_rounded_dy_input_grad, 3, kInputGrad)
TRAIN_GEMM(bf16_rounded_dy_weight_grad, 3, kWeightGrad)
TRAIN_GEMM(e4m3_forward, 2, kForward)
TRAIN_GEMM(e4m3_input_grad, 2, kInputGrad)
TRAIN_GEMM(e4m3_weight_grad, 2, kWeightGrad)

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::printf("peaks: f32 FMA %.0f GFLOP/s, bf16 dot %.0f GFLOP/s (%d threads)\n",
              account::measure_cpu_gflops(0.3), lowp_peak_gflops(ThreadPool::global(), 0.3),
              ThreadPool::global().size());
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
