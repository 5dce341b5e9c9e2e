#include "train/pipeline_schedule.h"

#include <algorithm>
#include <deque>

#include "core/error.h"

namespace tern::train {
namespace {

// Emits one rank's DualPipe ops. "Phase 0" is the direction in which this rank holds the early
// stage (half_rank), "phase 1" the other (stage P-1-half_rank); counters hand out micro-batches
// in order and deferred weight gradients leave first-in first-out.
class DualPipeRank {
 public:
  DualPipeRank(int rank, int stages) { near_dir_ = rank < stages / 2 ? 0 : 1; }
  std::vector<PipeOp> ops;

  void forward(int phase) { ops.push_back({PipeOpKind::forward, next_forward(phase), {}, true}); }
  void backward(int phase, bool defer_weight) {
    const PipeChunk b = next_backward(phase);
    ops.push_back({PipeOpKind::backward, {}, b, !defer_weight});
    if (defer_weight) deferred_.push_back(b);
  }
  void weight() {
    TERN_CHECK(!deferred_.empty());
    ops.push_back({PipeOpKind::weight, {}, deferred_.front(), false});
    deferred_.pop_front();
  }
  void forward_backward(int f_phase, int b_phase) {
    const PipeChunk f = next_forward(f_phase);
    ops.push_back({PipeOpKind::forward_backward, f, next_backward(b_phase), true});
  }
  size_t deferred() const { return deferred_.size(); }

 private:
  int dir(int phase) const { return phase == 0 ? near_dir_ : 1 - near_dir_; }
  PipeChunk next_forward(int phase) { return {dir(phase), forwards_[phase]++}; }
  PipeChunk next_backward(int phase) { return {dir(phase), backwards_[phase]++}; }

  int near_dir_ = 0;
  int forwards_[2] = {0, 0}, backwards_[2] = {0, 0};
  std::deque<PipeChunk> deferred_;
};

}  // namespace

PipeSchedule one_f_one_b(int stages, int micro_batches) {
  if (stages < 1 || micro_batches < 1)
    fail(ErrorKind::request, "1F1B needs at least one stage and one micro-batch, got " +
                                 std::to_string(stages) + " stages and " +
                                 std::to_string(micro_batches) + " micro-batches");
  PipeSchedule s{"1F1B", stages, micro_batches, 1, {}};
  s.ranks.resize(size_t(stages));
  for (int r = 0; r < stages; ++r) {
    std::vector<PipeOp>& ops = s.ranks[size_t(r)];
    const int warm = std::min(stages - 1 - r, micro_batches);
    int f = 0, b = 0;
    auto forward = [&] { ops.push_back({PipeOpKind::forward, {0, f++}, {}, true}); };
    auto backward = [&] { ops.push_back({PipeOpKind::backward, {}, {0, b++}, true}); };
    for (int i = 0; i < warm; ++i) forward();
    for (int i = warm; i < micro_batches; ++i) {
      forward();
      backward();
    }
    for (int i = 0; i < warm; ++i) backward();
  }
  return s;
}

PipeSchedule dualpipe(int stages, int micro_batches) {
  if (stages < 2 || stages % 2 != 0)
    fail(ErrorKind::request,
         "DualPipe needs an even number of stages (2, 4, 8, ...), got " + std::to_string(stages));
  if (micro_batches % 2 != 0 || micro_batches / 2 < stages)
    fail(ErrorKind::request,
         "DualPipe needs an even number of micro-batches, at least twice the stages (" +
             std::to_string(2 * stages) + " for " + std::to_string(stages) + " stages), got " +
             std::to_string(micro_batches));
  PipeSchedule s{"DualPipe", stages, micro_batches, 2, {}};
  const int half_ranks = stages / 2, half_micro = micro_batches / 2;
  for (int r = 0; r < stages; ++r) {
    DualPipeRank p(r, stages);
    const int h = std::min(r, stages - 1 - r);  // this rank's early-stage index
    const bool middle = h == half_ranks - 1;
    const int outer = half_ranks - h - 1;  // stages between this rank and the middle
    // 1: forwards of the near direction fill the pipe from its end.
    for (int i = 0; i < 2 * outer; ++i) p.forward(0);
    // 2: both directions' forwards, alternating.
    for (int i = 0; i < h + 1; ++i) {
      p.forward(0);
      p.forward(1);
    }
    // 3: far-direction backwards arrive; their W waits (zero bubble) until after a forward.
    for (int i = 0; i < outer; ++i) {
      p.backward(1, true);
      p.weight();
      p.forward(1);
    }
    // 4: the steady state, a forward of one direction overlapped with a backward of the other.
    // The middle ranks run their first pair unoverlapped: the two chunks depend on each other.
    for (int i = 0; i < half_micro - stages + h + 1; ++i) {
      if (i == 0 && middle) {
        p.forward(0);
        p.backward(1, false);
      } else {
        p.forward_backward(0, 1);
      }
      p.forward_backward(1, 0);
    }
    // 5: the far direction's last backwards, each followed by a pair.
    for (int i = 0; i < outer; ++i) {
      p.backward(1, false);
      p.forward_backward(1, 0);
    }
    // 6: the remaining backwards of both directions; from the middle on, W is deferred.
    bool defer = false;
    for (int i = 0; i < h + 1; ++i) {
      if (i == (h + 1) / 2 && h % 2 == 1) defer = true;
      p.backward(1, defer);
      if (i == (h + 1) / 2 && h % 2 == 0) defer = true;
      p.backward(0, defer);
    }
    // 7: deferred Ws interleaved with the near direction's last backwards.
    for (int i = 0; i < outer; ++i) {
      p.weight();
      p.backward(0, true);
    }
    // 8: the remaining Ws.
    while (p.deferred() > 0) p.weight();
    s.ranks.push_back(std::move(p.ops));
  }
  return s;
}

PipeSchedule make_pipe_schedule(const std::string& name, int stages, int micro_batches) {
  if (name == "1f1b") return one_f_one_b(stages, micro_batches);
  if (name == "dualpipe") return dualpipe(stages, micro_batches);
  fail(ErrorKind::request, "unknown pipeline schedule '" + name + "' (expected 1f1b or dualpipe)");
}

}  // namespace tern::train
