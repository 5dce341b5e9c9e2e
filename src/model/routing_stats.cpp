#include "model/routing_stats.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/strict_json.h"
#include "formats/text_file.h"
#include "model/load_weights.h"
#include "model/router.h"

namespace tern::model {

RoutingCollector::RoutingCollector(const Model& m) : c_(m.config()) {
  const ModelWeights& w = m.weights();
  for (int64_t l = 0; l < c_.num_hidden_layers; ++l) {
    const LayerWeights& L = w.layers[size_t(l)];
    if (!L.is_moe || !L.moe.gate.present()) continue;
    Layer& st = by_gate_[L.moe.gate.view.data];
    st.index = l;
    const Tensor g = dequantize(L.moe.gate.view);
    st.gate.assign(g.data_as<const float>(), g.data_as<const float>() + g.numel());
    st.bias = L.moe.e_score_correction_bias.present() ? L.moe.e_score_correction_bias.ptr()
                                                     : nullptr;
    st.counts.assign(size_t(c_.n_routed_experts), 0);
    st.weights.assign(size_t(c_.n_routed_experts), 0.0);
  }
}


void RoutingCollector::observe(const kernels::MatmulParams& p, void* self) {
  auto* rc = static_cast<RoutingCollector*>(self);
  const auto it = rc->by_gate_.find(p.w.data);
  if (it == rc->by_gate_.end()) return;
  Layer& st = it->second;
  const int64_t E = rc->c_.n_routed_experts, K = rc->c_.num_experts_per_tok, d = p.w.cols;
  // Tokens route independently: spread over the pool (the observer runs on the caller, outside
  // any parallel loop), then counted in order.
  std::vector<int32_t> idx(static_cast<size_t>(p.T * K));
  std::vector<float> weight(static_cast<size_t>(p.T * K));
  ThreadPool::global().parallel_for(p.T, 1, [&](int64_t b, int64_t e, int) {
    std::vector<float> logits(static_cast<size_t>(E)), scratch(static_cast<size_t>(3 * E));
    for (int64_t t = b; t < e; ++t) {
      const float* x = p.x + t * p.ldx;
      for (int64_t j = 0; j < E; ++j) {
        const float* g = st.gate.data() + j * d;
        float acc = 0;
        for (int64_t i = 0; i < d; ++i) acc += g[i] * x[i];
        logits[size_t(j)] = acc;
      }
      route_token(rc->c_, logits.data(), st.bias, scratch.data(), idx.data() + t * K,
                  weight.data() + t * K);
    }
  });
  for (int64_t k = 0; k < p.T * K; ++k) {
    st.counts[size_t(idx[size_t(k)])] += 1;
    st.weights[size_t(idx[size_t(k)])] += weight[size_t(k)];
  }
  st.tokens += p.T;
}

RoutingStats RoutingCollector::result() const {
  std::vector<const Layer*> layers;
  for (const auto& [ptr, st] : by_gate_) layers.push_back(&st);
  std::sort(layers.begin(), layers.end(),
            [](const Layer* a, const Layer* b) { return a->index < b->index; });
  RoutingStats s;
  for (const Layer* l : layers) {
    s.layers.push_back(l->index);
    s.counts.push_back(l->counts);
    s.weights.push_back(l->weights);
    s.tokens = std::max(s.tokens, l->tokens);
  }
  return s;
}

void write_routing_stats(const std::string& path, const RoutingStats& s) {
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < s.layers.size(); ++i)
    layers.push_back({{"layer", s.layers[i]}, {"counts", s.counts[i]}, {"weights", s.weights[i]}});
  const nlohmann::json j = {{"format", "tern-routing-stats"},
                            {"version", 1},
                            {"tokens", s.tokens},
                            {"layers", layers}};
  formats::write_text_file(path, j.dump() + "\n");
}

RoutingStats read_routing_stats(const std::string& path) {
  const nlohmann::json j = formats::read_json_file_strict(path);
  auto bad = [&](const std::string& why) {
    fail(ErrorKind::format, path + ": " + why + " (routing statistics from `tern prune "
                                                "--stats-out`)");
  };
  if (!j.is_object() || j.value("format", std::string()) != "tern-routing-stats") bad("not routing statistics");
  if (j.value("version", 0) != 1) bad("unknown version");
  RoutingStats s;
  try {
    s.tokens = j.at("tokens").get<int64_t>();
    for (const auto& l : j.at("layers")) {
      s.layers.push_back(l.at("layer").get<int64_t>());
      s.counts.push_back(l.at("counts").get<std::vector<int64_t>>());
      s.weights.push_back(l.at("weights").get<std::vector<double>>());
      if (s.counts.back().empty() || s.counts.back().size() != s.counts.front().size() ||
          s.weights.back().size() != s.counts.back().size())
        bad("layers disagree on the number of experts (or have none)");
      for (size_t e = 0; e < s.counts.back().size(); ++e)
        if (s.counts.back()[e] < 0 || !(s.weights.back()[e] >= 0) ||
            !std::isfinite(s.weights.back()[e]))
          bad("layer " + std::to_string(s.layers.back()) + " has a negative or non-finite entry");
      if (s.layers.size() > 1 && s.layers.back() <= s.layers[s.layers.size() - 2])
        bad("layers are not in ascending order");
    }
  } catch (const nlohmann::json::exception& e) {
    bad(e.what());
  }
  if (s.layers.empty()) bad("no MoE layer");
  return s;
}

}  // namespace tern::model
