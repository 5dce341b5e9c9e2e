// What `tern bench` reports for one batch size, and its two forms: a table row in the units of
// account/quantity and a JSON object with exact numbers (keys as the inference issue names them).
// Owns presentation only; the figures are computed in cmd_bench from bench_run's timings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tern::app {

struct BenchFigures {
  int64_t batch = 1, prompt = 0, gen = 0, threads = 0;
  std::string kv_dtype, kernels;
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0, ttft_s = 0;
  double peak_rss_bytes = 0;
  // The memory budget (issue: peak RSS within weights + KV pool + 10%): the process's RSS before
  // the model loaded, the weights' resident bytes and this batch's KV pool; overhead = (peak -
  // baseline) / (weights + KV) - 1.
  double rss_baseline_bytes = 0, weight_resident_bytes = 0, kv_pool_bytes = 0;
  double memory_overhead_fraction = 0;
  double kv_bytes_per_token = 0;       // KV cache stored per token, all layers
  double weight_bytes_per_token = 0;   // weights one decoded token reads (activated bytes)
  double kv_read_bytes_per_token = 0;  // KV read by one decode step at the mean context
  double bytes_per_token = 0;          // one step's reads / batch: the roofline's denominator
  double bandwidth_gbs = 0;
  bool bandwidth_measured = false;  // false: given with --bandwidth
  double roofline_tokens_per_s = 0, roofline_fraction = 0;
  double joules_per_token = 0;  // decode energy / decoded tokens
  bool energy_measured = false;
  std::string energy_source;
};

nlohmann::ordered_json to_json(const BenchFigures& f);
// Header line, then one row per batch size, to stdout.
void print_bench_table(const std::string& model, const std::vector<BenchFigures>& rows);

}  // namespace tern::app
