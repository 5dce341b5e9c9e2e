// --ep N on the commands that run a model (run, logits): the routed experts spread over the N
// ranks `mpirun -np N` started (model/expert_parallel.h). Every rank runs the same command; rank
// 0 (the lead) prints and writes, the others compute their experts' share and stay quiet.
#pragma once

#include <cstdint>
#include <string>

#include "model/expert_parallel.h"

namespace tern::app {

// Nothing for ep 0 (no --ep; refused under a launcher of several ranks, which would otherwise
// run N independent copies). Otherwise checks that the launcher started exactly ep ranks and
// returns the world communicator (alive until exit); followers' logging drops to warnings.
model::ExpertParallel open_expert_parallel(int64_t ep, const std::string& command);

// Whether this process prints and writes: not a follower rank of an --ep job.
bool is_lead(const model::ExpertParallel& ep);

}  // namespace tern::app
