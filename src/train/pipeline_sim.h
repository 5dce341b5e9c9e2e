// Times a pipeline schedule from per-chunk costs: each rank runs its ops in order, an op starts
// when its rank is free and its inputs have arrived (a forward needs the previous stage's
// forward of that micro-batch, a backward the next stage's backward and its own forward, a W its
// B), plus a hand-off time for each crossing between ranks. On 2 cores wall-clock overlap is
// mostly noise, so tern measures F, B and W of a chunk and compares schedules in those units
// (docs/scale-out.md, "Pipeline schedules").
#pragma once

#include <string>
#include <vector>

#include "train/pipeline_schedule.h"

namespace tern::train {

// Seconds (or any one unit) for one chunk: a stage's layers on one micro-batch.
struct ChunkCosts {
  double forward = 0;   // F
  double backward = 0;  // B: the input gradient
  double weight = 0;    // W: the weight gradient
  // F&B, a forward and a backward (with its W) of the other direction run overlapped; < 0:
  // F + B + W (the computation does not shrink, only the hand-offs hide behind it).
  double forward_backward = -1;
  double hand_off = 0;  // one activation or gradient crossing to the neighbouring rank

  double pair() const {
    return forward_backward >= 0 ? forward_backward : forward + backward + weight;
  }
};

struct PipeSpan {
  int op = 0;  // index into the rank's op list
  double start = 0, end = 0;
};

struct PipeTimeline {
  double makespan = 0;                       // the whole step, from the first op to the last
  std::vector<double> busy;                  // [P] time each rank computes
  std::vector<double> bubble;                // [P] makespan - busy: idle time
  std::vector<int> peak_activations;         // [P] most micro-batches with forward done, B not yet
  std::vector<std::vector<PipeSpan>> spans;  // [P] one per op, in order

  double max_bubble() const;
};

// Fails (internal) when the schedule deadlocks (an op waits on one that never runs) or misses
// or repeats a chunk.
PipeTimeline simulate(const PipeSchedule& s, const ChunkCosts& c);
// Stages of different costs (the first holds the embedding, the last the head and loss):
// per_stage[s] for chunks of stage s; an F&B pair costs F of its forward's stage plus B and W
// of its backward's, unless the forward's stage sets forward_backward.
PipeTimeline simulate(const PipeSchedule& s, const std::vector<ChunkCosts>& per_stage);

// DeepSeek-V3's bubbles (report, table 2) in these units. Its table's B is the whole backward
// (B + W here: its ZB1P row (PP-1)(F+B-2W) is zero-bubble's (PP-1)(F+B-W) that way), so 1F1B's
// (PP-1)(F+B) is (PP-1)(F+B+W) and DualPipe's (PP/2-1)(F&B+B-3W) is (PP/2-1)(F&B+B-2W).
double one_f_one_b_bubble_formula(int stages, const ChunkCosts& c);
double dualpipe_bubble_formula(int stages, const ChunkCosts& c);

// The schedules' timelines as one SVG picture (a group of rank rows per schedule, one time
// axis in `unit`): F, B, W, unsplit B+W and overlapped F&B in their own colours, each box
// labelled with its micro-batch (a prime marks the second direction).
std::string pipeline_timelines_svg(const std::vector<const PipeSchedule*>& schedules,
                                   const std::vector<const PipeTimeline*>& timelines,
                                   const std::string& unit);

}  // namespace tern::train
