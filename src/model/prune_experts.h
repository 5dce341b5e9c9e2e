// MoE expert pruning by routing statistics (`tern prune`): which routed experts each MoE layer
// keeps — the same count in every layer and in every expert group, so the config stays standard
// and group-limited routing stays valid — and the pruned model written as a Hugging Face
// directory: kept experts renumbered in order with their tensors as stored, the router's rows
// and correction biases cut to them, `n_routed_experts` updated. With merging, each dropped
// expert is folded into the most similar kept expert of its layer (cosine of their weights),
// weighted by how often each was chosen.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/routing_stats.h"

namespace tern::model {

struct PruneOptions {
  double keep = 0.5;       // fraction of routed experts kept
  bool per_layer = false;  // rank experts per layer (else by their usage summed over layers)
  bool merge = false;      // fold dropped experts into kept ones instead of discarding them
};

struct PrunePlan {
  int64_t experts = 0;  // the new n_routed_experts
  // Per MoE layer (MTP layers included): the old ids kept, ascending (new id = position).
  std::map<int64_t, std::vector<int32_t>> keep;
  // Per MoE layer, with merging: dropped old id -> the kept old id it folds into.
  std::map<int64_t, std::map<int32_t, int32_t>> merge_into;
};

// Fails (request) for a keep fraction outside (0, 1], a count below what top-K routing needs
// (num_experts_per_tok, or topk_group × per-group count for group-limited routing), and
// (config) statistics of another model (other MoE layers or expert count).
PrunePlan plan_pruning(const ModelConfig& c, const RoutingStats& s, const PruneOptions& o);

struct PruneSummary {
  int64_t experts_before = 0, experts_after = 0, merged = 0;
  int64_t bytes_in = 0, bytes_out = 0;
};

// Writes the pruned model of in_dir (a Hugging Face directory) to out_dir, which appears by
// rename only once complete. Merging needs the statistics' counts (the frequencies).
PruneSummary write_pruned_model(const std::string& in_dir, const std::string& out_dir,
                                PrunePlan plan, const RoutingStats& s, bool merge);

}  // namespace tern::model
