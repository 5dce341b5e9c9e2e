// Table and JSON forms of the bench figures. The table labels an estimated energy with "est."
// in its cell so a reader never takes an assumed board power for a measurement.
#include "apps/tern/bench_report.h"

#include <cmath>
#include <cstdio>

#include "account/quantity.h"

namespace tern::app {

nlohmann::ordered_json to_json(const BenchFigures& f) {
  return {{"batch", f.batch},
          {"prompt_tokens", f.prompt},
          {"gen_tokens", f.gen},
          {"threads", f.threads},
          {"kv_dtype", f.kv_dtype},
          {"kernels", f.kernels},
          {"prefill_tokens_per_s", f.prefill_tokens_per_s},
          {"decode_tokens_per_s", f.decode_tokens_per_s},
          {"ttft_s", f.ttft_s},
          {"peak_rss_bytes", f.peak_rss_bytes},
          {"rss_baseline_bytes", f.rss_baseline_bytes},
          {"weight_resident_bytes", f.weight_resident_bytes},
          {"kv_pool_bytes", f.kv_pool_bytes},
          {"memory_overhead_fraction", f.memory_overhead_fraction},
          {"kv_bytes_per_token", f.kv_bytes_per_token},
          {"weight_bytes_per_token", f.weight_bytes_per_token},
          {"kv_read_bytes_per_token", f.kv_read_bytes_per_token},
          {"bytes_per_token", f.bytes_per_token},
          {"bandwidth_gbs", f.bandwidth_gbs},
          {"bandwidth_measured", f.bandwidth_measured},
          {"roofline_tokens_per_s", f.roofline_tokens_per_s},
          {"roofline_fraction", f.roofline_fraction},
          {"joules_per_token", f.joules_per_token},
          {"energy_measured", f.energy_measured},
          {"energy_source", f.energy_source}};
}

namespace {

// Sub-second times in ms: the SI formatter has no prefixes below 1.
std::string seconds(double s) {
  return s >= 1 ? account::si(s, "s") : account::fixed(s * 1e3, s >= 0.1 ? 0 : 1) + " ms";
}

}  // namespace

void print_bench_table(const std::string& model, const std::vector<BenchFigures>& rows) {
  using account::human;
  using account::si;
  if (rows.empty()) return;
  const BenchFigures& r0 = rows.front();
  std::printf(
      "%s: prompt %lld tokens, %lld decoded per sequence, kv %s, kernels %s, %lld threads, read "
      "bandwidth %s (%s), energy %s\n",
      model.c_str(), (long long)r0.prompt, (long long)r0.gen, r0.kv_dtype.c_str(),
      r0.kernels.c_str(), (long long)r0.threads, si(r0.bandwidth_gbs * 1e9, "B/s").c_str(),
      r0.bandwidth_measured ? "measured now" : "given", r0.energy_source.c_str());
  std::printf("%5s %10s %10s %9s %10s %10s %10s %11s %10s %11s\n", "batch", "pp tok/s", "tg tok/s",
              "ttft", "peak RSS", "KV B/tok", "wt B/tok", "bandwidth", "roofline", "J/token");
  for (const BenchFigures& f : rows) {
    const std::string joules = si(f.joules_per_token, "J") + (f.energy_measured ? "" : " est.");
    std::printf("%5lld %10s %10s %9s %10s %10s %10s %11s %9s%% %11s\n", (long long)f.batch,
                human(f.prefill_tokens_per_s).c_str(), human(f.decode_tokens_per_s).c_str(),
                seconds(f.ttft_s).c_str(), si(f.peak_rss_bytes, "B").c_str(),
                si(f.kv_bytes_per_token, "B").c_str(), si(f.weight_bytes_per_token, "B").c_str(),
                si(f.bandwidth_gbs * 1e9, "B/s").c_str(),
                account::fixed(100 * f.roofline_fraction, 1).c_str(), joules.c_str());
  }
  const BenchFigures& last = rows.back();
  std::printf(
      "memory: peak RSS %s = start %s + weights %s + KV pool %s (batch %lld) %s %s%% "
      "(target: within 10%%)\n",
      si(last.peak_rss_bytes, "B").c_str(), si(last.rss_baseline_bytes, "B").c_str(),
      si(last.weight_resident_bytes, "B").c_str(), si(last.kv_pool_bytes, "B").c_str(),
      (long long)last.batch, last.memory_overhead_fraction >= 0 ? "+" : "-",
      account::fixed(100 * std::fabs(last.memory_overhead_fraction), 1).c_str());
}

}  // namespace tern::app
