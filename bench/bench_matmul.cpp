// Matrix-vector (decode, T=1) and matrix-matrix (prefill, T=32) throughput of kernels::matmul
// for each weight dtype and each ISA this CPU supports, reported as GFLOP/s and as GB/s of weight
// bytes streamed, next to the machine's measured memory bandwidth (STREAM triad).
//
//   build/release/bench/bench_matmul [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "account/cpu_probe.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/amx_gemm.h"
#include "kernels/cpu/isa.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/int8_decode.h"
#include "kernels/int8_gemm.h"
#include "kernels/matmul.h"
#include "kernels/packed_k_tiles.h"
#include "kernels/packed_panels.h"
#include "kernels/packed_tiles.h"
#include "kernels/quantize.h"

using namespace tern;
using namespace tern::kernels;

namespace {

struct BenchWeight {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  WeightView view;
};

BenchWeight make(DType dt, int64_t rows, int64_t cols) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  // Values only for the dtypes quantised from floats: drawing a normal per weight of the
  // multi-GB decode_many sets took minutes.
  std::vector<float> w;
  if (dt == DType::f32 || dt == DType::bf16 || dt == DType::f8_e4m3 || dt == DType::i8 ||
      dt == DType::i4) {
    w.resize(static_cast<size_t>(rows * cols));
    for (auto& v : w) v = nd(rng);
  }
  BenchWeight b;
  b.view = WeightView{dt, rows, cols, nullptr};
  b.bytes.resize(size_t(dtype_bytes_for(dt, rows * cols)));
  switch (dt) {
    case DType::f32:
      std::memcpy(b.bytes.data(), w.data(), b.bytes.size());
      break;
    case DType::bf16:
      for (size_t i = 0; i < w.size(); ++i)
        reinterpret_cast<uint16_t*>(b.bytes.data())[i] = f32_to_bf16(w[i]);
      break;
    case DType::f8_e4m3:
      b.scales.resize(size_t(((rows + 127) / 128) * ((cols + 127) / 128)));
      quantize_fp8_blocks(w.data(), rows, cols, 128, 128, b.bytes.data(), b.scales.data());
      b.view.scales = b.scales.data();
      break;
    case DType::i8:
    case DType::i4:  // int8 / int4 with a scale per row and 128 columns
      b.scales.resize(size_t(rows * ((cols + 127) / 128)));
      quantize_int_groups(w.data(), rows, cols, dt == DType::i8 ? 8 : 4, 128, b.bytes.data(),
                          b.scales.data());
      b.view.scales = b.scales.data();
      b.view.block_rows = 1;
      break;
    default: {  // GGUF blocks: random bytes with small f16 scales (speed does not depend on
                // values): Q4_K's d and dmin lead its block, Q6_K's d ends it, the i-quants'
                // d leads (IQ1_M's is spread over its scales: random bits there)
      for (size_t i = 0; i < b.bytes.size(); ++i) b.bytes[i] = uint8_t(rng());
      const size_t block = size_t(dtype_block_bytes(dt));
      const std::vector<size_t> f16s = dt == DType::q4_k || dt == DType::q5_k
                                           ? std::vector<size_t>{0, 2}
                                       : dt == DType::q6_k ? std::vector<size_t>{208}
                                       : dt == DType::q3_k ? std::vector<size_t>{108}
                                       : dt == DType::q2_k ? std::vector<size_t>{80, 82}
                                                           : std::vector<size_t>{0};
      const uint16_t d = f32_to_f16(0.01f);
      for (size_t blk = 0; blk < b.bytes.size() / block; ++blk)
        for (size_t at : f16s) std::memcpy(b.bytes.data() + blk * block + at, &d, 2);
    }
  }
  b.view.data = b.bytes.data();
  return b;
}

// Times matmul on w.view with state.range(2) tokens: GFLOP/s and weight bytes read per second.
void time_matmul(benchmark::State& state, const BenchWeight& w, const IsaKernels* isa) {
  const int64_t rows = w.view.rows, cols = w.view.cols, T = state.range(2);
  std::vector<float> x(static_cast<size_t>(T * cols), 0.5f), y(static_cast<size_t>(T * rows));
  for (auto _ : state) {
    matmul(MatmulParams{x.data(), cols, y.data(), rows, T, w.view}, nullptr, isa);
    benchmark::DoNotOptimize(y.data());
  }
  const double iters = double(state.iterations());
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(rows * cols * T) * iters / 1e9, benchmark::Counter::kIsRate);
  state.counters["weight_GB/s"] =
      benchmark::Counter(double(w.bytes.size()) * iters / 1e9, benchmark::Counter::kIsRate);
}

void BM_matmul(benchmark::State& state, DType dt, const IsaKernels* isa) {
  time_matmul(state, make(dt, state.range(0), state.range(1)), isa);
}

// The serving kernels (quantised activations): one-token integer decode, and for several tokens
// AMX BF16 tiles where the CPU has them (TERN_AMX=0 turns them off), else the packed int8 GEMM.
void BM_matmul_fast(benchmark::State& state, DType dt) {
  const ScopedServingKernels on(true);
  BM_matmul(state, dt, nullptr);
}

// matmul_fast on the 32-row panels prepacking chooses on AVX-512 VNNI (kernels/packed_panels.h):
// the same shapes, so the layout's gain over packing int8 panels per call shows in one run.
void BM_matmul_panels(benchmark::State& state, DType dt) {
  if (!panel_dot_kernel()) return state.SkipWithError("no panel kernel on this CPU / ISA");
  const ScopedServingKernels on(true);
  const int64_t rows = state.range(0), cols = state.range(1);
  BenchWeight w = make(dt, rows, cols);
  std::vector<uint8_t> panels(w.bytes.size());
  pack_panels(dt, w.bytes.data(), rows, cols, panels.data());
  w.bytes.swap(panels);
  w.view.data = w.bytes.data();
  w.view.packed = w.view.panels = true;
  time_matmul(state, w, nullptr);
}

// Decode through many distinct matrices in turn (more bytes than the last-level cache), as a
// model's layers are: each one a short stream, so prefetchers restart at every matrix.
void BM_decode_many(benchmark::State& state, DType dt) {
  const ScopedServingKernels on(true);
  const int64_t rows = state.range(0), cols = state.range(1), count = state.range(2);
  std::vector<BenchWeight> ws;
  for (int64_t i = 0; i < count; ++i) ws.push_back(make(dt, rows, cols));
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows));
  size_t bytes = 0;
  for (auto& w : ws) bytes += w.bytes.size();
  for (auto _ : state) {
    for (auto& w : ws) matmul(MatmulParams{x.data(), cols, y.data(), rows, 1, w.view});
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_GB/s"] = benchmark::Counter(
      double(bytes) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// decode_many's matrices packed tile-major (kernels/packed_tiles.h) and read by the packed
// kernel on the pool, the activations quantised once per matrix as the decode path does: the
// layout's gain in the same run.
void BM_decode_packed(benchmark::State& state, DType dt) {
  const int64_t rows = state.range(0), cols = state.range(1), count = state.range(2);
  std::vector<std::vector<uint8_t>> ws;
  for (int64_t i = 0; i < count; ++i) {
    const BenchWeight w = make(dt, rows, cols);
    ws.emplace_back(size_t(packed_bytes(dt, rows, cols)));
    pack_tiles(dt, w.bytes.data(), rows, cols, ws.back().data());
  }
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows + 4));
  const PackedDot4 kernel = packed_dot4_kernel();
  const GgmlPackedDot4 ggml_kernel = ggml_packed_dot4_kernel();
  const bool k_quant = is_k_packed(dt);
  if (k_quant && !ggml_kernel) return state.SkipWithError("no packed k-quant kernel");
  ThreadPool& tp = ThreadPool::global();
  const int64_t n_tiles = (rows + 3) / 4, tile_bytes = packed_tile_bytes(dt, cols);
  ActQ8 act;
  size_t bytes = 0;
  for (auto& w : ws) bytes += w.size();
  for (auto _ : state) {
    for (auto& w : ws) {
      quantize_act_q8(x.data(), cols, act);
      if (k_quant) regroup_act_k(act);
      const ActQ8* xs = &act;
      tp.parallel_for(
          n_tiles, std::max<int64_t>(1, n_tiles / (8 * tp.size())), [&](int64_t b, int64_t e, int) {
            for (int64_t t = b; t < e; ++t)
              if (k_quant)
                ggml_kernel(dt, w.data() + t * tile_bytes, &xs, 1, cols, y.data() + 4 * t);
              else
                kernel(dt, w.data() + t * tile_bytes, act, cols / 32, y.data() + 4 * t);
          });
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_GB/s"] = benchmark::Counter(
      double(bytes) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// The AMX tile unit's BF16 peak on the pool's threads (0 where there is no AMX).
void BM_amx_bf16_peak(benchmark::State& state) {
  double gflops = 0;
  for (auto _ : state) gflops = amx_bf16_peak_gflops(ThreadPool::global());
  state.counters["peak_GFLOP/s"] = gflops;
}

// The AVX-512 VNNI int8 peak on the pool's threads (0 without VNNI).
void BM_vnni_int8_peak(benchmark::State& state) {
  double gops = 0;
  for (auto _ : state) gops = vnni_int8_peak_gops(ThreadPool::global());
  state.counters["peak_GOP/s"] = gops;
}

void BM_avx2_int8_peak(benchmark::State& state) {
  double gops = 0;
  for (auto _ : state) gops = avx2_int8_peak_gops(ThreadPool::global());
  state.counters["peak_GOP/s"] = gops;
}

void BM_memory_bandwidth(benchmark::State& state) {
  double gbs = 0;
  for (auto _ : state) gbs = account::measure_bandwidth().gbs;
  state.counters["triad_GB/s"] = gbs;
}

int register_all() {
  benchmark::RegisterBenchmark("memory_bandwidth_triad", BM_memory_bandwidth)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("amx_bf16_peak", BM_amx_bf16_peak)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("vnni_int8_peak", BM_vnni_int8_peak)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("avx2_int8_peak", BM_avx2_int8_peak)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  for (const IsaKernels* isa : supported_isas()) {
    for (DType dt : {DType::f32, DType::bf16, DType::f8_e4m3, DType::q8_0, DType::q4_0}) {
      const std::string name =
          std::string("matmul/") + isa->name + "/" + std::string(dtype_name(dt));
      benchmark::RegisterBenchmark(name.c_str(), BM_matmul, dt, isa)
          ->Args({4096, 4096, 1})   // decode: one token through a 4096x4096 projection
          ->Args({2048, 7168, 1})   // one DeepSeek-V3 routed expert's gate projection
          ->Args({4096, 4096, 32})  // a 32-token prefill chunk
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      // 512 Mi weights: larger than the last-level cache, so decode streams from DRAM (the
      // 4096x4096 cases above stay cache-resident on CPUs with large L3s).
      if (dt != DType::f32)
        benchmark::RegisterBenchmark((name + "/dram").c_str(), BM_matmul, dt, isa)
            ->Args({65536, 8192, 1})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
  }
  for (DType dt : {DType::bf16, DType::f8_e4m3, DType::q8_0, DType::q4_0, DType::i8, DType::i4}) {
    const std::string name = std::string("matmul_fast/") + std::string(dtype_name(dt));
    benchmark::RegisterBenchmark(name.c_str(), BM_matmul_fast, dt)
        ->Args({4096, 4096, 1})
        ->Args({2048, 7168, 1})
        ->Args({4096, 4096, 32})
        ->Args({8960, 1536, 16})  // qwen2-1.5b's MLP up projection, batch-16 decode
        ->Args({1408, 2048, 2})   // a v3-mini-8l routed expert's gate, 2 of a batch's tokens
        ->Args({1408, 2048, 4})
        ->Args({1408, 2048, 8})
        ->Args({1408, 2048, 16})
        ->Args({1536, 8960, 256})  // its down projection, a 256-token prefill chunk
        ->Args({8960, 1536, 512})  // its up projection in pp512
        ->Args({1536, 1536, 512})  // its q projection in pp512
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark((name + "/dram").c_str(), BM_matmul_fast, dt)
        ->Args({65536, 8192, 1})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  for (DType dt : {DType::q8_0, DType::q4_0})
    benchmark::RegisterBenchmark(
        (std::string("matmul_panels/") + std::string(dtype_name(dt))).c_str(), BM_matmul_panels, dt)
        ->Args({8960, 1536, 1})
        ->Args({65536, 4096, 1})  // DRAM-sized: decode's bandwidth
        ->Args({8960, 1536, 16})
        ->Args({1408, 2048, 4})
        ->Args({1408, 2048, 16})
        ->Args({1536, 8960, 256})
        ->Args({8960, 1536, 512})
        ->Args({1536, 1536, 512})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  // GGUF types in prefill: bf16 GEMM / AMX where the CPU has them, else int8 panels (the
  // types ggml_panel_supported names) or the 4-token kernel 4 tokens at a time.
  for (DType dt : {DType::q2_k, DType::q3_k, DType::q4_k, DType::q5_k, DType::q6_k, DType::iq4_xs,
                   DType::iq2_xxs, DType::iq1_m})
    benchmark::RegisterBenchmark(
        (std::string("matmul_fast/") + std::string(dtype_name(dt))).c_str(), BM_matmul_fast, dt)
        ->Args({8960, 1536, 16})
        ->Args({1536, 8960, 256})
        ->Args({1536, 1536, 512})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  for (DType dt : {DType::q8_0, DType::q4_0, DType::q2_k, DType::q3_k, DType::q4_k, DType::q5_k,
                   DType::q6_k, DType::iq4_xs, DType::iq3_s, DType::iq3_xxs, DType::iq2_s,
                   DType::iq2_xs, DType::iq2_xxs, DType::iq1_m, DType::iq1_s})
    benchmark::RegisterBenchmark(
        (std::string("decode_many/") + std::string(dtype_name(dt))).c_str(), BM_decode_many, dt)
        ->Args({8960, 1536, 96})  // ~1.3-2.5 GB of qwen2-1.5b-sized MLP matrices
        ->Args({1536, 1536, 512})
        ->Args({393216, 1536, 1})  // the same bytes as one matrix
        ->Args({1536, 1536, 4})
        ->Args({512, 1536, 1})  // a few hundred kB: the kernel's own rate, from L2
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  for (DType dt :
       {DType::q8_0, DType::q4_0, DType::q2_k, DType::q3_k, DType::q4_k, DType::q5_k, DType::q6_k})
    benchmark::RegisterBenchmark(
        (std::string("decode_packed/") + std::string(dtype_name(dt))).c_str(), BM_decode_packed, dt)
        ->Args({8960, 1536, 96})
        ->Args({1536, 1536, 512})
        ->Args({393216, 1536, 1})
        ->Args({1536, 1536, 4})  // ~5-8 MB: from the last-level cache, the kernel's own speed
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
