#include "train/expert_shards.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/grad/f32_weights.h"

namespace tern::train {
namespace {

// The MTP modules' embedding and head slots: views of the main tensors in f32 training weights
// (model::grad::param_slots marks them alias where they are allocated). Decided by name, so a
// rank that holds neither agrees with the ranks that do.
bool mtp_view(const std::string& name) {
  if (name.rfind("model.embed_tokens.", 0) == 0) return false;
  return name.find(".embed_tokens.") != std::string::npos ||
         name.find(".shared_head.head.") != std::string::npos;
}

}  // namespace

model::ModelWeights gather_slots(const model::ModelConfig& c, dist::Communicator& comm,
                                 const SlotOwner& owner, model::ModelWeights& local,
                                 const model::grad::HeldSlots& lead_holds) {
  const bool lead = comm.rank() == 0;
  const int n = comm.size();
  model::ModelWeights full;
  std::vector<model::grad::ParamSlot> to;
  if (lead) {
    full = model::grad::make_f32_weights(c, nullptr, lead_holds);
    to = model::grad::param_slots(c, full);
  }
  const std::vector<model::grad::ParamSlot> from = model::grad::param_slots(c, local);
  std::vector<int64_t> send(static_cast<size_t>(n)), recv(static_cast<size_t>(n));
  for (size_t i = 0; i < from.size(); ++i) {
    const model::grad::ParamSlot& s = from[i];
    if (mtp_view(s.name) || (lead_holds && !lead_holds(s.name))) continue;
    const int at = owner(s.name);
    if (at == 0) {  // replicated, or rank 0's own
      if (lead) {
        TERN_CHECK(s.size == to[i].size);
        std::copy_n(s.data, s.size, to[i].data);
      }
      continue;
    }
    std::fill(send.begin(), send.end(), 0);
    std::fill(recv.begin(), recv.end(), 0);
    if (comm.rank() == at) {
      TERN_CHECK(s.data != nullptr);
      send[0] = s.size * int64_t(sizeof(float));
    }
    if (lead) recv[size_t(at)] = int64_t(to[i].size) * int64_t(sizeof(float));
    comm.all_to_allv(s.data, send.data(), lead ? to[i].data : nullptr, recv.data())->wait();
  }
  return full;
}

model::ModelWeights gather_experts(const model::ModelConfig& c, const model::ExpertParallel& ep,
                                   model::ModelWeights& local) {
  return gather_slots(
      c, *ep.comm,
      [&](const std::string& name) {
        int64_t e = -1;
        return model::grad::routed_expert_slot(name, &e) ? ep.owner(e, c.n_routed_experts) : 0;
      },
      local);
}

}  // namespace tern::train
