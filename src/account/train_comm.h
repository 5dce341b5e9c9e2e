// Communication per GPU for training under a parallel layout (the scale-out issue): bytes one GPU
// sends for gradient reduction per optimizer step, for expert-parallel all-to-all and for
// pipeline hand-offs per micro-batch. Formulas, from the layout and the model's shapes (uniform
// routing, bandwidth-optimal ring collectives; docs/scale-out.md):
// - data parallel: ZeRO-0 all-reduces the gradients, 2 (n-1)/n × their bytes; ZeRO >= 1
//   reduce-scatters the gradients and all-gathers the updated weights, (n-1)/n × (gradient +
//   weight bytes). Dense parameters reduce over the dp replicas, routed experts over dp / ep.
// - expert parallel: each token's k routed copies leave the GPU with probability (ep-1)/ep;
//   a copy costs the dispatch (FP8 values + an f32 scale per 128 in the fp8 recipe, else BF16)
//   and the BF16 combine forward, and BF16 both ways backward; per MoE layer on the stage.
// - pipeline: a middle stage sends its output activations forward and its input gradients
//   back, BF16, tokens × hidden each way.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "account/model_figures.h"
#include "account/train_memory.h"

namespace tern::account {

struct TrainComm {
  double dp_bytes_per_step = 0;         // gradient reduction (and ZeRO's weight gather)
  double ep_bytes_per_micro_batch = 0;  // all-to-all dispatch and combine, forward + backward
  double pp_bytes_per_micro_batch = 0;  // activations out, gradients back (a middle stage)
  double ep_bytes_per_token_layer = 0;  // one token through one MoE layer, forward + backward
};

TrainComm train_comm_per_gpu(const ModelFigures& m, const Parallelism& par, const TrainRecipe& r,
                             int64_t seq, bool include_mtp);

// The same traffic as time on a device's links (Hardware::nvlink_gbs inside a node,
// network_gbs between nodes), bandwidth-bound, no latency, no overlap: what a schedule must
// hide. A group stays inside a node when the whole job does, or (expert parallel) when the
// ep group fits one node, as layouts place it; otherwise its ring or all-to-all runs at the
// NIC's rate. `known` is false when the device has no interconnect figures.
struct TrainCommTime {
  bool known = false;
  double dp_seconds_per_step = 0;
  double ep_seconds_per_micro_batch = 0;
  double pp_seconds_per_micro_batch = 0;
};
TrainCommTime train_comm_time(const TrainComm& c, const Parallelism& par, const Hardware& hw);

nlohmann::json to_json(const TrainComm& c);
nlohmann::json to_json(const TrainCommTime& t);

}  // namespace tern::account
