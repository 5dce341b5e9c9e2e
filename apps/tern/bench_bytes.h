// Bytes of weights a decode step reads, walked from the loaded weights in their stored dtypes
// (so a q4_0 GGUF counts its blocks, an fp8 checkpoint its scales). This is a model of the
// traffic, not a measurement: it is the numerator of the bandwidth roofline `tern bench` prints.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace tern::app {

struct DecodeWeightBytes {
  // Read by every token: attention, dense MLPs, shared experts, routers, norms, the LM head and
  // one embedding row.
  double dense = 0;
  double routed_total = 0;      // every routed expert of every MoE layer
  double routed_per_token = 0;  // each MoE layer's routed bytes x num_experts_per_tok / n_routed

  double per_token() const { return dense + routed_per_token; }
  // One step of `batch` tokens: dense weights once, the routed experts of all tokens bounded by
  // every expert (tokens that pick the same expert share its read).
  double per_step(int64_t batch) const {
    return dense + std::min(routed_total, double(batch) * routed_per_token);
  }
};

DecodeWeightBytes decode_weight_bytes(const model::Model& m);

// The first matrix of each distinct storage dtype (first seen first), as loaded (prepacked or
// not): what the serving kernels' paths are chosen by.
std::vector<kernels::WeightView> matrix_kinds(const model::Model& m);

}  // namespace tern::app
