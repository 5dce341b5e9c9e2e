// Serving plan: weight and KV-cache memory, whether it fits, bandwidth-bound decode speed,
// the compute/bandwidth crossover batch and cost per million output tokens. Owns the roofline
// arithmetic for decode; FLOPs and bytes per step come from flops.h.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "account/energy.h"
#include "account/hardware.h"
#include "account/model_figures.h"

namespace tern::account {

struct ServeInputs {
  int64_t gpus = 1;
  std::string quant = "fp8";      // weights: bf16 | fp8 | int8 | int4
  std::string kv_dtype = "bf16";  // KV cache: bf16 | fp8
  int64_t context = 32768;        // tokens per sequence held in the cache (and attended)
  int64_t batch = 1;              // concurrent sequences
  double price_per_gpu_hour = 2.0;
  double pue = 1.2;
  double memory_utilisation = 0.9;  // usable share of device memory (vLLM's default)
  bool include_mtp = false;         // keep the MTP module resident (speculative decoding)
};
void validate(const ServeInputs& in);

// One decode step of `batch` sequences under the roofline: time = max(compute, memory).
struct DecodePoint {
  double batch = 0;
  double flops = 0;      // whole step
  double bytes = 0;      // whole step (weights read once + every sequence's cache)
  double compute_s = 0;  // matmuls at the quant's peak + attention core at the BF16 peak
  double memory_s = 0;   // bytes / (gpus * bandwidth)
  double step_s() const { return compute_s > memory_s ? compute_s : memory_s; }
  bool compute_bound() const { return compute_s > memory_s; }
  double tokens_per_s() const { return batch / step_s(); }  // all sequences together
};

struct ServePlan {
  ModelFigures model;
  Hardware hardware;
  ServeInputs inputs;
  double weight_bytes_per_param = 0;
  double weights = 0;                  // resident weights, bytes
  double kv_bytes_per_token = 0;       // this model's cache (MLA latent or GQA K/V)
  double kv_full_bytes_per_token = 0;  // the same attention with materialised K/V
  double kv_cache = 0;                 // batch * context * kv_bytes_per_token
  double kv_cache_full = 0;
  double capacity = 0;  // gpus * memory * utilisation
  bool fits = false;
  bool fits_full_kv = false;
  int64_t max_batch = 0;  // at this context, with this cache (0: weights alone overflow)
  int64_t max_batch_full_kv = 0;
  double peak_flops = 0;  // per device, for matmuls at the compute precision of the quant
  DecodePoint batch1;
  DecodePoint at_batch;
  double crossover_batch = 0;  // smallest batch that is compute-bound; 0 = never
  double dollars_per_million_batch1 = 0;
  double dollars_per_million = 0;    // at `batch`
  EnergyReading energy_per_million;  // at `batch`, estimate
};

ServePlan plan_serving(const ModelFigures& m, const Hardware& hw, const ServeInputs& in);
// The roofline of one decode step (exposed for tests and for `tern bench` to compare with).
DecodePoint decode_point(const ModelFigures& m, const Hardware& hw, const ServeInputs& in,
                         double batch);

nlohmann::json to_json(const ServePlan& p);

}  // namespace tern::account
