#include "train/expert_shards.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/grad/f32_weights.h"

namespace tern::train {

model::ModelWeights gather_experts(const model::ModelConfig& c, const model::ExpertParallel& ep,
                                   model::ModelWeights& local) {
  const bool lead = ep.rank() == 0;
  const int n = ep.ranks();
  model::ModelWeights full;
  std::vector<model::grad::ParamSlot> to;
  if (lead) {
    full = model::grad::make_f32_weights(c);
    to = model::grad::param_slots(c, full);
  }
  const std::vector<model::grad::ParamSlot> from = model::grad::param_slots(c, local);
  std::vector<int64_t> send(static_cast<size_t>(n)), recv(static_cast<size_t>(n));
  for (size_t i = 0; i < from.size(); ++i) {
    const model::grad::ParamSlot& s = from[i];
    if (s.alias) continue;  // the MTP module's views of the embedding and head
    int64_t e = -1;
    const bool expert = model::grad::routed_expert_slot(s.name, &e);
    const int owner = expert ? ep.owner(e, c.n_routed_experts) : 0;
    if (owner == 0) {  // replicated, or rank 0's own expert: rank 0 has it
      if (lead) std::copy_n(s.data, s.size, to[i].data);
      continue;
    }
    std::fill(send.begin(), send.end(), 0);
    std::fill(recv.begin(), recv.end(), 0);
    if (ep.rank() == owner) send[0] = s.size * int64_t(sizeof(float));
    if (lead) recv[size_t(owner)] = int64_t(to[i].size) * int64_t(sizeof(float));
    ep.comm->all_to_allv(s.data, send.data(), lead ? to[i].data : nullptr, recv.data())->wait();
  }
  return full;
}

}  // namespace tern::train
