// The "cpu" hardware: figures measured on the machine this runs on. Owns a STREAM-triad-like
// memory bandwidth probe and an FMA throughput probe, both spread over ThreadPool::global().
// Does not own the presets (hardware.h); measured numbers are labelled as such in `source`.
#pragma once

#include <cstdint>

#include "account/hardware.h"

namespace tern::account {

struct BandwidthProbe {
  double gbs = 0;  // best-of-N triad bandwidth, GB/s (STREAM counts 24 B/element)
  int64_t bytes_per_array = 0;
  int threads = 0;
};

// a[i] = b[i] + s * c[i] over three double arrays of `bytes_per_array` each (0 = four times the
// last-level cache, at least 64 MiB, at most 1 GiB and 1/16 of system memory), best of
// `repeats`, as STREAM reports.
BandwidthProbe measure_bandwidth(int64_t bytes_per_array = 0, int repeats = 5);

// FP32 fused multiply-add throughput of all threads on an L1-resident array, GFLOP/s
// (2 FLOP per FMA). Uses AVX-512 / AVX2+FMA code paths when the CPU has them.
double measure_cpu_gflops(double seconds = 0.2);

// Total system memory from /proc/meminfo, bytes (0 when unreadable).
double system_memory_bytes();

struct CpuOverrides {
  double bandwidth_gbs = 0;  // > 0 skips the bandwidth probe
  double tflops = 0;         // > 0 skips the FLOP probe
  double memory_gb = 0;      // > 0 replaces /proc/meminfo
  double power_w = 0;        // > 0 replaces RAPL / the assumed figure
};

// A Hardware named "cpu" from measurements (or overrides). Board power comes from RAPL package
// counters read around the bandwidth probe when readable, else an assumed 150 W, and `source`
// says which figures were measured and which assumed.
Hardware measure_cpu_hardware(const CpuOverrides& overrides = {});

}  // namespace tern::account
