// Expert parallelism at inference (docs/scale-out.md): the routed experts of every MoE layer are
// split over the ranks of a job in contiguous blocks — rank r of N holds experts
// [E·r/N, E·(r+1)/N) and loads no others — while everything else (attention, router, shared
// experts, head) is replicated. Every rank runs the same forward over the same tokens; in each
// MoE layer a rank computes its own experts' weighted outputs for the tokens routed to them
// (rank 0 adds the shared experts), and one all-reduce sums the partial outputs, so every rank
// continues with the same hidden states. What crosses the wire is d floats per token per MoE
// layer; what each machine must hold is 1/N of the experts.
#pragma once

#include <cstdint>

#include "dist/communicator.h"

namespace tern::model {

struct ExpertParallel {
  dist::Communicator* comm = nullptr;  // null: one process holds every expert

  int rank() const { return comm ? comm->rank() : 0; }
  int ranks() const { return comm ? comm->size() : 1; }
  bool active() const { return ranks() > 1; }
  // Rank r's experts out of E: [block_begin(r), block_begin(r + 1)); this rank's: [begin, end).
  int64_t block_begin(int r, int64_t E) const { return E * r / ranks(); }
  int64_t begin(int64_t E) const { return block_begin(rank(), E); }
  int64_t end(int64_t E) const { return block_begin(rank() + 1, E); }
  bool holds(int64_t expert, int64_t E) const { return expert >= begin(E) && expert < end(E); }
  // The rank holding an expert.
  int owner(int64_t expert, int64_t E) const {
    int r = 0;
    while (r + 1 < ranks() && block_begin(r + 1, E) <= expert) ++r;
    return r;
  }
  // The shared experts run on one rank only, or the sum would count them N times.
  bool runs_shared() const { return rank() == 0; }
};

}  // namespace tern::model
