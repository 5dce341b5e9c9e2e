// CPU probes: triad bandwidth and FMA throughput (see cpu_probe.h). Arrays are first touched
// by the same static chunking as the timed loop, so on NUMA machines each thread streams from
// its own node, as STREAM's OpenMP version does.
#include "account/cpu_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "account/energy.h"
#include "account/quantity.h"
#include "core/thread_pool.h"

namespace tern::account {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t last_level_cache_bytes() {
  int64_t best = 0;
  for (int index = 0; index < 8; ++index) {
    std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string s;
    if (!(in >> s) || s.empty()) continue;
    int64_t scale = 1;
    if (s.back() == 'K')
      scale = 1024, s.pop_back();
    else if (s.back() == 'M')
      scale = 1024 * 1024, s.pop_back();
    try {
      best = std::max(best, int64_t(std::stoll(s)) * scale);
    } catch (const std::exception&) {
    }
  }
  return best;
}

// One FMA chain per lane over a block that stays in registers: 12 independent vectors per
// ISA, enough to hide the FMA latency on CPUs with two FMA units (4 cycles x 2 units needs 8;
// 64 floats were only 4 zmm chains, which measured a quarter of a Zen 5 core's peak). Variants
// per ISA so a portable build still measures the real peak.
#define TERN_FMA_BODY(n)             \
  for (int64_t r = 0; r < reps; ++r) \
    for (int i = 0; i < n; ++i) y[i] = y[i] * a + b;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("avx512f,fma"), optimize("fp-contract=fast"))) void fma_avx512(float* y,
                                                                                     float a,
                                                                                     float b,
                                                                                     int64_t reps) {
  TERN_FMA_BODY(192)
}
__attribute__((target("avx2,fma"), optimize("fp-contract=fast"))) void fma_avx2(float* y, float a,
                                                                                float b,
                                                                                int64_t reps) {
  TERN_FMA_BODY(96)
}
#endif
void fma_portable(float* y, float a, float b, int64_t reps) {
  TERN_FMA_BODY(64)
}

using FmaFn = void (*)(float*, float, float, int64_t);
struct FmaProbe {
  FmaFn fn;
  int floats;  // the block one call updates per rep
};
FmaProbe pick_fma() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {fma_avx512, 192};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {fma_avx2, 96};
#endif
  return {fma_portable, 64};
}

}  // namespace

BandwidthProbe measure_bandwidth(int64_t bytes_per_array, int repeats) {
  if (bytes_per_array <= 0) {
    // STREAM's rule (4x the last-level cache), but never more than 1/16 of the machine.
    const int64_t cap = std::clamp<int64_t>(int64_t(system_memory_bytes() / 16), int64_t(16) << 20,
                                            int64_t(1) << 30);
    bytes_per_array =
        std::min(std::max<int64_t>(4 * last_level_cache_bytes(), int64_t(64) << 20), cap);
  }
  const int64_t n = std::max<int64_t>(bytes_per_array / int64_t(sizeof(double)), 1024);
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
  ThreadPool& pool = ThreadPool::global();
  const int64_t grain = 4096;
  pool.parallel_for(n, grain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; ++i) a[i] = 0.0, b[i] = 1.0, c[i] = 2.0;
  });
  const double s = 3.0;
  double best = 1e300;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    const auto t0 = Clock::now();
    pool.parallel_for(n, grain, [&](int64_t lo, int64_t hi, int) {
      double* __restrict pa = a.get();
      const double* __restrict pb = b.get();
      const double* __restrict pc = c.get();
      for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
    });
    best = std::min(best, seconds_since(t0));
  }
  volatile double sink = a[n / 2];  // keep the stores observable
  (void)sink;
  BandwidthProbe p;
  p.bytes_per_array = n * int64_t(sizeof(double));
  p.threads = pool.size();
  p.gbs = 3.0 * double(p.bytes_per_array) / best / 1e9;
  return p;
}

double measure_cpu_gflops(double seconds) {
  ThreadPool& pool = ThreadPool::global();
  const int threads = pool.size();
  const FmaProbe fma = pick_fma();
  std::vector<double> flops(threads, 0.0);
  std::vector<double> checksum(threads, 0.0);
  const auto t0 = Clock::now();
  pool.parallel_for(threads, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t t = lo; t < hi; ++t) {
      alignas(64) float y[192];
      for (int i = 0; i < 192; ++i) y[i] = 1.0f + float(i) * 1e-3f;
      const int64_t reps = 20000;
      double done = 0;
      const auto start = Clock::now();
      while (seconds_since(start) < seconds) {
        // a*y+b with |a| < 1 converges instead of overflowing, however long it runs.
        fma.fn(y, 0.999f, 1e-3f, reps);
        done += 2.0 * fma.floats * double(reps);
      }
      flops[t] = done;
      checksum[t] = y[0];
    }
  });
  const double elapsed = seconds_since(t0);
  double total = 0, sum = 0;
  for (int t = 0; t < threads; ++t) total += flops[t], sum += checksum[t];
  volatile double sink = sum;
  (void)sink;
  return total / elapsed / 1e9;
}

double system_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:") return kb * 1024.0;
  return 0;
}

Hardware measure_cpu_hardware(const CpuOverrides& o) {
  Hardware h;
  h.name = "cpu";
  h.description =
      "this machine's CPU (" + std::to_string(ThreadPool::global().size()) + " threads)";
  std::string measured, given;
  auto note = [](std::string& list, const std::string& item) {
    list += (list.empty() ? "" : ", ") + item;
  };

  RaplCounters rapl;
  const bool rapl_ok = rapl.available();
  const auto t0 = Clock::now();
  const double e0 = rapl_ok ? rapl.read_joules() : 0;
  if (o.bandwidth_gbs > 0) {
    h.bandwidth_gbs = o.bandwidth_gbs;
    note(given, "bandwidth");
  } else {
    const BandwidthProbe p = measure_bandwidth();
    h.bandwidth_gbs = p.gbs;
    note(measured, "bandwidth (triad, " + human_bytes(double(p.bytes_per_array)) + " arrays, " +
                       std::to_string(p.threads) + " threads)");
  }
  const double probe_s = seconds_since(t0);
  if (o.power_w > 0) {
    h.power_w = o.power_w;
    note(given, "power");
  } else if (rapl_ok && probe_s > 0.05) {
    h.power_w = rapl.read_joules_since(e0) / probe_s;
    note(measured, "power (RAPL package counters during the bandwidth probe)");
  } else {
    h.power_w = 150;
    note(given, "power (assumed 150 W: RAPL not readable)");
  }
  if (o.tflops > 0) {
    h.bf16_tflops = o.tflops;
    note(given, "peak FLOP/s");
  } else {
    h.bf16_tflops = measure_cpu_gflops() / 1e3;
    note(measured, "FP32 FMA FLOP/s");
  }
  if (o.memory_gb > 0) {
    h.memory_gb = o.memory_gb;
    note(given, "memory");
  } else {
    h.memory_gb = system_memory_bytes() / 1e9;
    note(measured, "memory (/proc/meminfo)");
  }
  h.source = (measured.empty() ? "" : "measured: " + measured) +
             (given.empty() ? "" : std::string(measured.empty() ? "" : "; ") + "given: " + given);
  validate(h);
  return h;
}

}  // namespace tern::account
