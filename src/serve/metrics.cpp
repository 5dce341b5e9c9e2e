#include "serve/metrics.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace tern::serve {
namespace {
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
void line(std::string& out, const std::string& name, double v) {
  out += name + " " + num(v) + "\n";
}
void help(std::string& out, const char* name, const char* type, const char* text) {
  out += std::string("# HELP ") + name + " " + text + "\n# TYPE " + name + " " + type + "\n";
}
}  // namespace

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++counts_[i];
  sum_ += seconds;
  ++n_;
}

void Histogram::render(std::string& out, const std::string& name) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += counts_[i];
    line(out, name + "_bucket{le=\"" + num(kBounds[i]) + "\"}", double(cumulative));
  }
  line(out, name + "_bucket{le=\"+Inf\"}", double(n_));
  line(out, name + "_sum", sum_);
  line(out, name + "_count", double(n_));
}

void Metrics::request_done(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::tokens(int64_t prompt, int64_t cached, int64_t generated) {
  std::lock_guard<std::mutex> lock(mu_);
  prompt_tokens_ += uint64_t(prompt);
  cached_tokens_ += uint64_t(cached);
  generated_tokens_ += uint64_t(generated);
}

void Metrics::upstream_done(const std::string& reason, int64_t prompt, int64_t completion) {
  std::lock_guard<std::mutex> lock(mu_);
  ++upstream_requests_[reason];
  upstream_prompt_tokens_ += uint64_t(prompt);
  upstream_completion_tokens_ += uint64_t(completion);
}

void Metrics::time_to_first_token(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::inter_token(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  itl_.observe(seconds);
}

std::string Metrics::render(const BackendStats& e) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  help(out, "tern_requests_total", "counter", "HTTP requests answered, by endpoint and status");
  for (const auto& [key, n] : requests_)
    line(out,
         "tern_requests_total{endpoint=\"" + key.first + "\",status=\"" +
             std::to_string(key.second) + "\"}",
         double(n));
  help(out, "tern_prompt_tokens_total", "counter", "prompt tokens received");
  line(out, "tern_prompt_tokens_total", double(prompt_tokens_));
  help(out, "tern_prompt_cache_hit_tokens_total", "counter",
       "prompt tokens whose KV came from the prefix cache");
  line(out, "tern_prompt_cache_hit_tokens_total", double(cached_tokens_));
  help(out, "tern_generated_tokens_total", "counter", "tokens generated");
  line(out, "tern_generated_tokens_total", double(generated_tokens_));
  if (!upstream_requests_.empty()) {
    help(out, "tern_upstream_requests_total", "counter",
         "requests forwarded to the upstream, by the condition that sent them");
    for (const auto& [reason, n] : upstream_requests_)
      line(out, "tern_upstream_requests_total{reason=\"" + reason + "\"}", double(n));
    help(out, "tern_upstream_prompt_tokens_total", "counter",
         "prompt tokens of forwarded requests, as the upstream's usage reported them");
    line(out, "tern_upstream_prompt_tokens_total", double(upstream_prompt_tokens_));
    help(out, "tern_upstream_completion_tokens_total", "counter",
         "tokens the upstream generated for forwarded requests");
    line(out, "tern_upstream_completion_tokens_total", double(upstream_completion_tokens_));
  }
  help(out, "tern_time_to_first_token_seconds", "histogram",
       "from a request's arrival to its first generated token");
  ttft_.render(out, "tern_time_to_first_token_seconds");
  help(out, "tern_inter_token_latency_seconds", "histogram",
       "time between consecutive tokens of one stream");
  itl_.render(out, "tern_inter_token_latency_seconds");
  help(out, "tern_queue_depth", "gauge", "requests waiting for a generation slot");
  line(out, "tern_queue_depth", double(e.queued));
  help(out, "tern_active_sequences", "gauge", "sequences generating now");
  line(out, "tern_active_sequences", double(e.active));
  help(out, "tern_kv_cache_blocks_used", "gauge", "KV cache blocks held by sequences");
  line(out, "tern_kv_cache_blocks_used", double(e.kv_blocks_used));
  help(out, "tern_kv_cache_blocks", "gauge", "KV cache blocks in the pool");
  line(out, "tern_kv_cache_blocks", double(e.kv_blocks));
  help(out, "tern_kv_cache_usage_ratio", "gauge", "share of the KV cache held by sequences");
  line(out, "tern_kv_cache_usage_ratio",
       e.kv_blocks > 0 ? double(e.kv_blocks_used) / double(e.kv_blocks) : 0.0);
  help(out, "tern_engine_steps_total", "counter", "batched forward steps run");
  line(out, "tern_engine_steps_total", double(e.steps));
  help(out, "tern_engine_batch_rows_total", "counter", "rows (tokens) those steps held");
  line(out, "tern_engine_batch_rows_total", double(e.batch_rows));
  if (e.mtp) {
    help(out, "tern_mtp_drafted_tokens_total", "counter",
         "tokens drafted by the model's MTP module (speculative decoding)");
    line(out, "tern_mtp_drafted_tokens_total", double(e.mtp_drafted));
    help(out, "tern_mtp_accepted_tokens_total", "counter", "drafts the main model accepted");
    line(out, "tern_mtp_accepted_tokens_total", double(e.mtp_accepted));
    help(out, "tern_mtp_acceptance_ratio", "gauge", "accepted over drafted, since the start");
    line(out, "tern_mtp_acceptance_ratio",
         e.mtp_drafted > 0 ? double(e.mtp_accepted) / double(e.mtp_drafted) : 0.0);
  }
  if (e.experts > 0 && !e.expert_tokens.empty()) {
    const int64_t layers = int64_t(e.expert_tokens.size()) / e.experts;
    help(out, "tern_expert_routed_tokens_total", "counter",
         "tokens routed to each expert, by MoE layer (0 = the first MoE layer)");
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t x = 0; x < e.experts; ++x)
        line(out,
             "tern_expert_routed_tokens_total{moe_layer=\"" + std::to_string(l) + "\",expert=\"" +
                 std::to_string(x) + "\"}",
             double(e.expert_tokens[size_t(l * e.experts + x)]));
    help(out, "tern_expert_load_max_over_mean", "gauge",
         "the busiest expert's tokens over the mean, by MoE layer (1 = perfectly balanced)");
    for (int64_t l = 0; l < layers; ++l) {
      const auto first = e.expert_tokens.begin() + l * e.experts;
      const double total = double(std::accumulate(first, first + e.experts, int64_t(0)));
      const double mx = double(*std::max_element(first, first + e.experts));
      line(out, "tern_expert_load_max_over_mean{moe_layer=\"" + std::to_string(l) + "\"}",
           total > 0 ? mx / (total / double(e.experts)) : 0.0);
    }
  }
  return out;
}

}  // namespace tern::serve
