#include "account/train_comm.h"

#include <nlohmann/json.hpp>

namespace tern::account {

TrainComm train_comm_per_gpu(const ModelFigures& m, const Parallelism& par, const TrainRecipe& r,
                             int64_t seq, bool include_mtp) {
  validate(par, m);
  // Parameters held per GPU, as the memory plan counts them (hardware only sizes capacity).
  const TrainMemory held = train_memory_per_gpu(m, Hardware{}, par, r, seq, include_mtp);
  TrainComm c;
  auto reduce = [&](double params, double n) {
    if (n <= 1) return 0.0;
    return par.zero >= 1 ? (n - 1) / n * params * (r.gradient + r.weight)
                         : 2.0 * (n - 1) / n * params * r.gradient;
  };
  c.dp_bytes_per_step = reduce(held.dense_params_per_gpu, double(par.dp())) +
                        reduce(held.expert_params_per_gpu, double(par.dp() / par.ep));

  const double d = double(m.hidden_size), tokens = double(par.micro_batch) * double(seq);
  if (m.is_moe() && par.ep > 1) {
    const double dispatch =
        r.precision == "fp8" ? d + 4.0 * double((m.hidden_size + 127) / 128) : 2.0 * d;
    const double off_rank = double(par.ep - 1) / double(par.ep);
    c.ep_bytes_per_token_layer = double(m.experts_per_token) * off_rank *
                                 (dispatch + 2.0 * d /*combine*/ + 2.0 * 2.0 * d /*backward*/);
    const double moe_layers =
        double(m.moe_layers + (include_mtp ? m.mtp_layers : 0)) / double(par.pp);
    c.ep_bytes_per_micro_batch = tokens * moe_layers * c.ep_bytes_per_token_layer;
  }
  if (par.pp > 1) c.pp_bytes_per_micro_batch = 2.0 * tokens * d * 2.0;
  return c;
}

TrainCommTime train_comm_time(const TrainComm& c, const Parallelism& par, const Hardware& hw) {
  TrainCommTime t;
  if (hw.nvlink_gbs <= 0 || hw.network_gbs <= 0) return t;
  t.known = true;
  const bool one_node = par.gpus <= hw.gpus_per_node;
  const double nvlink = hw.nvlink_gbs * 1e9, network = hw.network_gbs * 1e9;
  const double spanning = one_node ? nvlink : network;
  t.dp_seconds_per_step = c.dp_bytes_per_step / spanning;
  t.ep_seconds_per_micro_batch =
      c.ep_bytes_per_micro_batch / (one_node || par.ep <= hw.gpus_per_node ? nvlink : network);
  t.pp_seconds_per_micro_batch = c.pp_bytes_per_micro_batch / spanning;
  return t;
}

nlohmann::json to_json(const TrainCommTime& t) {
  if (!t.known) return nullptr;
  return {{"dp_seconds_per_step", t.dp_seconds_per_step},
          {"ep_seconds_per_micro_batch", t.ep_seconds_per_micro_batch},
          {"pp_seconds_per_micro_batch", t.pp_seconds_per_micro_batch}};
}

nlohmann::json to_json(const TrainComm& c) {
  return {{"dp_bytes_per_step", c.dp_bytes_per_step},
          {"ep_bytes_per_micro_batch", c.ep_bytes_per_micro_batch},
          {"ep_bytes_per_token_layer", c.ep_bytes_per_token_layer},
          {"pp_bytes_per_micro_batch", c.pp_bytes_per_micro_batch}};
}

}  // namespace tern::account
