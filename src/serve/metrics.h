// Metrics: the server's counters and latency histograms, rendered in Prometheus' text format
// for GET /metrics. Owns only numbers (thread-safe: HTTP threads record, a scrape reads); the
// gauges that belong to the engine (queue, KV use) are read from it at render time.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "serve/generation.h"

namespace tern::serve {

// Cumulative buckets as Prometheus expects; bounds in seconds.
class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,   1,    2.5,   5,    10,  30};
  void observe(double seconds);
  void render(std::string& out, const std::string& name) const;

 private:
  std::array<uint64_t, kBounds.size() + 1> counts_{};
  double sum_ = 0;
  uint64_t n_ = 0;
};

class Metrics {
 public:
  void request_done(const std::string& endpoint, int status);
  void tokens(int64_t prompt, int64_t cached, int64_t generated);
  void time_to_first_token(double seconds);
  void inter_token(double seconds);
  // A request answered by the upstream (upstream.h), why, and the tokens its usage reported.
  void upstream_done(const std::string& reason, int64_t prompt, int64_t completion);

  // The text of GET /metrics with the backend's gauges.
  std::string render(const BackendStats& engine) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, uint64_t> upstream_requests_;  // by reason
  uint64_t upstream_prompt_tokens_ = 0, upstream_completion_tokens_ = 0;
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, itl_;
};

}  // namespace tern::serve
