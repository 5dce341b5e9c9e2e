// Routing statistics of a MoE model over calibration text: per MoE layer and routed expert, how
// often it is chosen (top-K count) and how strongly (the sum of its gating weights). Collected
// by observing the router's matmul (kernels::ScopedMatmulObserver): the observer sees the gate's
// input rows, recomputes the logits in f32 and routes each token with the model's own rule
// (route_token), so the forward itself is untouched. What `tern prune` ranks experts by and
// `tern info --routing-stats` draws.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "model/model.h"

namespace tern::model {

struct RoutingStats {
  std::vector<int64_t> layers;               // MoE layer indices, ascending
  std::vector<std::vector<int64_t>> counts;  // [layer][expert]: times chosen
  std::vector<std::vector<double>> weights;  // [layer][expert]: sum of gating weights
  int64_t tokens = 0;                        // routed tokens per layer (the most seen)
  int64_t experts() const { return counts.empty() ? 0 : int64_t(counts[0].size()); }
};

class RoutingCollector {
 public:
  explicit RoutingCollector(const Model& m);
  RoutingCollector(const RoutingCollector&) = delete;
  RoutingCollector& operator=(const RoutingCollector&) = delete;
  RoutingStats result() const;

 private:
  static void observe(const kernels::MatmulParams& p, void* self);
  struct Layer {
    int64_t index = 0;
    std::vector<float> gate;  // [E, d] f32
    const float* bias = nullptr;
    std::vector<int64_t> counts;
    std::vector<double> weights;
    int64_t tokens = 0;
  };
  ModelConfig c_;
  std::map<const void*, Layer> by_gate_;
  // Last: alive only while everything it writes to is (constructed after, destroyed before).
  kernels::ScopedMatmulObserver observer_{&observe, this};
};

// JSON: {"format": "tern-routing-stats", "version": 1, "tokens": N, "layers": [{"layer": L,
// "counts": [...], "weights": [...]}]}. Written atomically; read with checks (fail: format).
void write_routing_stats(const std::string& path, const RoutingStats& s);
RoutingStats read_routing_stats(const std::string& path);

}  // namespace tern::model
