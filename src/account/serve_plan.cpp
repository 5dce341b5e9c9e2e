// Serving plan (see serve_plan.h). Decode reads the active weights once per step for the whole
// batch and each sequence's cache once per token, so small batches are bandwidth-bound and the
// crossover is where FLOPs catch up with those bytes.
#include "account/serve_plan.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "account/flops.h"
#include "account/quantity.h"
#include "core/error.h"

namespace tern::account {

namespace {
// Weight-only int8/int4 dequantise to BF16 for the matmul; FP8 runs on FP8 tensor cores where
// the device has them.
std::string compute_precision(const std::string& quant) {
  return quant == "fp8" ? "fp8" : "bf16";
}
}  // namespace

void validate(const ServeInputs& in) {
  if (in.gpus <= 0) fail(ErrorKind::request, "--gpus must be positive");
  if (in.context <= 0) fail(ErrorKind::request, "--context must be positive");
  if (in.batch <= 0) fail(ErrorKind::request, "--batch must be positive");
  weight_bytes_per_param(in.quant);
  kv_bytes_per_value(in.kv_dtype);
  require_range(in.price_per_gpu_hour, 0, 1e6, "--price-per-gpu-hour");
  require_range(in.pue, 1.0, 5.0, "--pue");
  require_range(in.memory_utilisation, 0.05, 1.0, "--memory-utilisation");
}

DecodePoint decode_point(const ModelFigures& m, const Hardware& hw, const ServeInputs& in,
                         double batch) {
  DecodePoint p;
  p.batch = batch;
  const ForwardFlops per_token = decode_flops_per_token(m, in.context);
  p.flops = batch * per_token.total();
  p.bytes = decode_bytes_per_step(m, batch, in.context, weight_bytes_per_param(in.quant),
                                  kv_bytes_per_value(in.kv_dtype))
                .total();
  const double g = double(in.gpus);
  // The attention core runs in BF16 (FlashMLA; the V3 recipe keeps attention out of FP8).
  p.compute_s = batch *
                (per_token.matmul / hw.peak_flops(compute_precision(in.quant)) +
                 per_token.attention / hw.peak_flops("bf16")) /
                g;
  p.memory_s = p.bytes / (g * hw.bandwidth_bytes_per_s());
  return p;
}

namespace {
// compute_s - memory_s is convex in the batch (linear FLOPs minus concave expert reads), so
// once a batch is compute-bound every larger one is: double, then bisect on integers.
double find_crossover(const ModelFigures& m, const Hardware& hw, const ServeInputs& in) {
  const double kMax = double(int64_t(1) << 30);
  double hi = 1;
  while (!decode_point(m, hw, in, hi).compute_bound()) {
    hi *= 2;
    if (hi > kMax) return 0;
  }
  double lo = hi / 2;
  if (hi == 1) return 1;
  while (hi - lo > 1) {
    const double mid = std::floor((lo + hi) / 2);
    (decode_point(m, hw, in, mid).compute_bound() ? hi : lo) = mid;
  }
  return hi;
}

int64_t max_batch(double capacity, double weights, double per_sequence) {
  if (capacity <= weights || per_sequence <= 0) return 0;
  return int64_t(std::floor((capacity - weights) / per_sequence));
}

double dollars_per_million(const ServeInputs& in, const DecodePoint& p) {
  return double(in.gpus) * in.price_per_gpu_hour / 3600.0 / p.tokens_per_s() * 1e6;
}
}  // namespace

ServePlan plan_serving(const ModelFigures& m, const Hardware& hw, const ServeInputs& in) {
  validate(m);
  validate(hw);
  validate(in);
  ServePlan p;
  p.model = m;
  p.hardware = hw;
  p.inputs = in;
  p.weight_bytes_per_param = weight_bytes_per_param(in.quant);
  const double params = double(m.params_total) + (in.include_mtp ? double(m.mtp_params_total) : 0);
  p.weights = params * p.weight_bytes_per_param;
  const double kvb = kv_bytes_per_value(in.kv_dtype);
  p.kv_bytes_per_token = double(m.layers) * double(m.kv_values_per_token_per_layer()) * kvb;
  p.kv_full_bytes_per_token =
      double(m.layers) * double(m.mha_kv_values_per_token_per_layer()) * kvb;
  const double tokens = double(in.batch) * double(in.context);
  p.kv_cache = tokens * p.kv_bytes_per_token;
  p.kv_cache_full = tokens * p.kv_full_bytes_per_token;
  p.capacity = double(in.gpus) * hw.memory_bytes() * in.memory_utilisation;
  p.fits = p.weights + p.kv_cache <= p.capacity;
  p.fits_full_kv = p.weights + p.kv_cache_full <= p.capacity;
  p.max_batch = max_batch(p.capacity, p.weights, double(in.context) * p.kv_bytes_per_token);
  p.max_batch_full_kv =
      max_batch(p.capacity, p.weights, double(in.context) * p.kv_full_bytes_per_token);
  p.peak_flops = hw.peak_flops(compute_precision(in.quant));
  p.batch1 = decode_point(m, hw, in, 1);
  p.at_batch = decode_point(m, hw, in, double(in.batch));
  p.crossover_batch = find_crossover(m, hw, in);
  p.dollars_per_million_batch1 = dollars_per_million(in, p.batch1);
  p.dollars_per_million = dollars_per_million(in, p.at_batch);
  p.energy_per_million =
      estimate_energy(hw.power_w, double(in.gpus), 1e6 / p.at_batch.tokens_per_s(), in.pue);
  return p;
}

nlohmann::json to_json(const ServePlan& p) {
  auto point = [](const DecodePoint& d) {
    return nlohmann::json{{"batch", d.batch},
                          {"flops_per_step", d.flops},
                          {"bytes_per_step", d.bytes},
                          {"compute_seconds", d.compute_s},
                          {"memory_seconds", d.memory_s},
                          {"bound", d.compute_bound() ? "compute" : "memory"},
                          {"tokens_per_second", d.tokens_per_s()},
                          {"tokens_per_second_per_sequence", d.tokens_per_s() / d.batch}};
  };
  return {{"model",
           {{"name", p.model.name},
            {"params_total", p.model.params_total},
            {"params_activated", p.model.params_activated}}},
          {"hardware", to_json(p.hardware)},
          {"inputs",
           {{"gpus", p.inputs.gpus},
            {"quant", p.inputs.quant},
            {"kv_dtype", p.inputs.kv_dtype},
            {"context", p.inputs.context},
            {"batch", p.inputs.batch},
            {"price_per_gpu_hour", p.inputs.price_per_gpu_hour},
            {"pue", p.inputs.pue},
            {"memory_utilisation", p.inputs.memory_utilisation},
            {"include_mtp", p.inputs.include_mtp}}},
          {"weight_bytes_per_param", p.weight_bytes_per_param},
          {"weights_bytes", p.weights},
          {"kv_bytes_per_token", p.kv_bytes_per_token},
          {"kv_full_bytes_per_token", p.kv_full_bytes_per_token},
          {"kv_cache_bytes", p.kv_cache},
          {"kv_cache_full_bytes", p.kv_cache_full},
          {"capacity_bytes", p.capacity},
          {"fits", p.fits},
          {"fits_with_full_kv", p.fits_full_kv},
          {"max_batch_at_context", p.max_batch},
          {"max_batch_at_context_full_kv", p.max_batch_full_kv},
          {"peak_flops_per_device", p.peak_flops},
          {"decode_batch1", point(p.batch1)},
          {"decode_at_batch", point(p.at_batch)},
          {"crossover_batch", p.crossover_batch},
          {"dollars_per_million_output_tokens_batch1", p.dollars_per_million_batch1},
          {"dollars_per_million_output_tokens", p.dollars_per_million},
          {"energy_kwh_per_million_output_tokens", p.energy_per_million.kwh()},
          {"energy_source", energy_source_name(p.energy_per_million.source)}};
}

}  // namespace tern::account
