// N ranks as threads of one process, over shared memory: the test double for every parallel
// algorithm (no MPI needed) and the reference for reduction order (sums in rank order, so the
// same inputs give the same bits on every run). Inputs are copied when a collective is issued,
// so a rank never waits for another to finish reading; wait() blocks until every rank has issued
// the collective, then computes this rank's outputs.
#pragma once

#include <memory>
#include <vector>

#include "dist/communicator.h"

namespace tern::dist {

// The communicators of one group, rank r at index r; give each to its own thread.
std::vector<std::unique_ptr<Communicator>> make_in_process_group(int n);

}  // namespace tern::dist
