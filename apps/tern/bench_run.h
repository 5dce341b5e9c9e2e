// One `tern bench` measurement: B random prompts prefilled one after another, then decoded
// together, one batch forward per step, over a shared paged KV pool. Owns the timing loop and
// its energy readings; flag handling and reporting are cmd_bench's and bench_report's.
#pragma once

#include <cstdint>

#include "account/energy.h"
#include "core/dtype.h"
#include "model/model.h"

namespace tern::app {

struct BenchParams {
  int64_t prompt = 512;  // tokens per prompt
  int64_t gen = 128;     // decode steps (tokens per sequence)
  int64_t batch = 1;     // sequences decoded together
  int64_t ctx = 0;       // positions per sequence (0: prompt + gen)
  int64_t chunk = 256;   // prompt tokens per prefill forward
  DType kv_dtype = DType::bf16;
  bool exact = false;  // exact f32 kernels instead of the serving kernels
  uint64_t seed = 0;   // prompt ids; distinct seeds give distinct prompts
};

struct BenchTimes {
  double prefill_s = 0;  // all B prompts, each ending with its first logits
  double ttft_s = 0;     // one prompt's prefill incl. its first logits, mean over the B prompts
  double decode_s = 0;   // gen steps of B rows each
  account::EnergyReading prefill_energy, decode_energy;
};

// Runs one measurement. ErrorKind::request when prompt + gen exceeds ctx or the model's context.
BenchTimes run_bench(const model::Model& m, const BenchParams& p);

// KV block size used by the bench pool (as tern run's).
constexpr int64_t kBenchBlockTokens = 64;

}  // namespace tern::app
