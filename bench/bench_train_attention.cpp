// The training attention core (scores, softmax, values; forward and backward) at
// train-small-v3's MLA shape (8 windows of 256 tokens, 4 heads, query/key dim 48, value dim 32)
// in bf16: the generic form (each product a gemm_lowp call packing its operands) against the
// form that rounds and packs each operand once. GFLOP/s count the causal products' arithmetic
// as computed (row blocks of 64 over keys [0, r1)); run with random interleaving so a loaded
// host moves both alike.
//
//   build/release/bench/bench_train_attention --benchmark_repetitions=6
//       --benchmark_enable_random_interleaving=true
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "model/grad/attention_grad.h"

using namespace tern;
using namespace tern::model::grad;

namespace {

// Products' FLOPs of one (window, head): forward QKᵀ and PV, backward four more.
double flops(const AttentionShape& s, bool backward) {
  double keys = 0;  // Σ over row blocks of rows · r1
  for (int64_t r0 = 0; r0 < s.T; r0 += kAttentionRowBlock) {
    const int64_t r1 = std::min(s.T, r0 + kAttentionRowBlock);
    keys += double(r1 - r0) * double(r1);
  }
  const double fwd = 2.0 * keys * double(s.dq + s.dv);
  return double(s.B * s.H) * (backward ? 2.0 * fwd : fwd);
}

void run(benchmark::State& st, bool packed_once, bool backward) {
  const AttentionShape s{8, 256, 4, 48, 32, 0.144f, true};
  const int64_t N = s.B * s.T;
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> q(size_t(N * s.H * s.dq)), k(q.size()), v(size_t(N * s.H * s.dv));
  std::vector<float> dO(v.size()), o(v.size()), dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<float> P(size_t(s.B * s.H * s.T * s.T));
  for (auto* x : {&q, &k, &v, &dO})
    for (float& e : *x) e = n(rng);
  ThreadPool& pool = ThreadPool::global();
  const auto fwd = packed_once ? attention_fwd_bf16 : attention_fwd_generic;
  const auto bwd = packed_once ? attention_bwd_bf16 : attention_bwd_generic;
  fwd(s, q.data(), k.data(), v.data(), P.data(), o.data(), pool);
  for (auto _ : st) {
    if (backward)
      bwd(s, q.data(), k.data(), v.data(), P.data(), dO.data(), dq.data(), dk.data(), dv.data(),
          pool);
    else
      fwd(s, q.data(), k.data(), v.data(), P.data(), o.data(), pool);
    benchmark::ClobberMemory();
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(flops(s, backward), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(run, generic_fwd, false, false)->UseRealTime();
BENCHMARK_CAPTURE(run, packed_once_fwd, true, false)->UseRealTime();
BENCHMARK_CAPTURE(run, generic_bwd, false, true)->UseRealTime();
BENCHMARK_CAPTURE(run, packed_once_bwd, true, true)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
