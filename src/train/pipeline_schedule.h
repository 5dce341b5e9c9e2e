// Pipeline-parallel schedules as per-rank op lists: the classic one-forward-one-backward (1F1B)
// and the DualPipe-style bidirectional schedule of DeepSeek-V3 (§3.2.1 of its report), with the
// backward split into its input-gradient (B) and weight-gradient (W) halves. A schedule is data:
// the simulator (pipeline_sim.h) times it from per-chunk costs, and a real pipeline run would
// execute the same lists. docs/scale-out.md, "Pipeline schedules", explains both.
#pragma once

#include <string>
#include <vector>

namespace tern::train {

// One micro-batch's pass through the model in one direction. 1F1B uses direction 0 only: stage
// s on rank s. DualPipe feeds half the micro-batches from each end: direction 0 enters at rank
// 0 (stage s on rank s), direction 1 at the last rank (stage s on rank P-1-s); every rank holds
// one stage of each direction.
struct PipeChunk {
  int dir = 0;
  int micro = 0;  // index within its direction, 0-based
  bool operator==(const PipeChunk&) const = default;
};

enum class PipeOpKind {
  forward,          // F of `f`
  backward,         // B of `b`, with its W when `with_weight`
  weight,           // a deferred W of `b` (zero-bubble: fills a gap later)
  forward_backward  // F of `f` and B(+W) of `b` (other direction) overlapped: one F&B
};

struct PipeOp {
  PipeOpKind kind = PipeOpKind::forward;
  PipeChunk f, b;
  bool with_weight = true;  // backward / forward_backward: W runs right after B
};

struct PipeSchedule {
  std::string name;
  int stages = 0;         // P: ranks in the pipeline
  int micro_batches = 0;  // all directions together
  int directions = 1;
  std::vector<std::vector<PipeOp>> ranks;  // [P] ops in execution order

  // The stage direction `dir` runs on `rank`, and the rank that runs stage `stage` of it.
  int stage_of(int dir, int rank) const { return dir == 0 ? rank : stages - 1 - rank; }
  int rank_of(int dir, int stage) const { return dir == 0 ? stage : stages - 1 - stage; }
};

// 1F1B over P stages and M micro-batches: rank r warms up with min(P-1-r, M) forwards, then
// alternates one forward and one backward, then drains its backwards. Fails (request) for P < 1
// or M < 1.
PipeSchedule one_f_one_b(int stages, int micro_batches);

// DualPipe over P stages (even, >= 2) and M micro-batches (even, M/2 >= P): M/2 from each end,
// in the eight phases of DeepSeek's published schedule (warm-up forwards of the near direction,
// both directions' forwards, zero-bubble B/W/F, the steady overlapped F&B pairs, the drain with
// deferred weight gradients). Ranks r and P-1-r run mirror images. Fails (request) otherwise.
PipeSchedule dualpipe(int stages, int micro_batches);

// "1f1b" or "dualpipe" by name; fails (request) on another name.
PipeSchedule make_pipe_schedule(const std::string& name, int stages, int micro_batches);

}  // namespace tern::train
