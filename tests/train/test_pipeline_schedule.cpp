// Pipeline schedules and their simulator: 1F1B's bubble is exactly its textbook (P-1)(F+B+W)
// and its activations P micro-batches; DualPipe's bubble equals DeepSeek-V3's formula where the
// formula's premise holds (F = B = W, F&B = F+B+W), stays below 1F1B's, holds P+1 micro-batches;
// every schedule runs each F, B and W once per stage; a broken schedule is caught.
#include <gtest/gtest.h>

#include "core/error.h"
#include "train/pipeline_schedule.h"
#include "train/pipeline_sim.h"

namespace tern::train {
namespace {

TEST(PipelineSchedule, OneFOneBBubbleIsTheTextbookOne) {
  for (int P : {1, 2, 3, 4, 8})
    for (int M : {1, 4, 8, 20})
      for (ChunkCosts c : {ChunkCosts{1, 1, 1}, ChunkCosts{1, 1.7, 0.6}, ChunkCosts{2, 0.5, 3}}) {
        const PipeTimeline t = simulate(one_f_one_b(P, M), c);
        const double work = M * (c.forward + c.backward + c.weight);
        for (int r = 0; r < P; ++r) EXPECT_DOUBLE_EQ(t.busy[size_t(r)], work);
        if (M >= P) {  // with fewer micro-batches than stages the pipe never fills
          EXPECT_NEAR(t.makespan - work, one_f_one_b_bubble_formula(P, c), 1e-9)
              << "P=" << P << " M=" << M;
          EXPECT_EQ(t.peak_activations[0], P);
        }
      }
}

TEST(PipelineSchedule, DualPipeMeetsDeepSeeksFormulaAtItsPremise) {
  for (int P : {2, 4, 6, 8})
    for (int M : {2 * P, 2 * P + 6, 40}) {
      const ChunkCosts c{1, 1, 1};  // F = B = W; F&B = F + B + W
      const PipeTimeline t = simulate(dualpipe(P, M), c);
      for (int r = 0; r < P; ++r) EXPECT_DOUBLE_EQ(t.busy[size_t(r)], M * 3.0);
      EXPECT_NEAR(t.max_bubble(), dualpipe_bubble_formula(P, c), 1e-9) << "P=" << P << " M=" << M;
      for (int r = 0; r < P; ++r) EXPECT_EQ(t.peak_activations[size_t(r)], P + 1) << r;
    }
}

TEST(PipelineSchedule, DualPipeBeatsOneFOneBWhenWeightGradientsFillGaps) {
  for (int P : {4, 8})
    for (ChunkCosts c : {ChunkCosts{1, 1.2, 0.8}, ChunkCosts{1, 2, 1}, ChunkCosts{1, 1, 1, 2.5}}) {
      const double dual = simulate(dualpipe(P, 4 * P), c).max_bubble();
      const double one = simulate(one_f_one_b(P, 4 * P), c).max_bubble();
      EXPECT_LT(dual, one / 2) << "P=" << P;
    }
}

TEST(PipelineSchedule, HandOffsLengthenTheStep) {
  const PipeSchedule s = dualpipe(4, 8);
  const double free = simulate(s, {1, 1, 1, -1, 0}).makespan;
  const double slow = simulate(s, {1, 1, 1, -1, 0.25}).makespan;
  EXPECT_GT(slow, free);
}

TEST(PipelineSchedule, EveryChunkRunsOnceOnEveryStage) {
  // The simulator refuses a schedule that repeats or skips a chunk; count the ops as well.
  for (int P : {2, 4, 8}) {
    const PipeSchedule s = dualpipe(P, 2 * P + 4);
    for (const auto& ops : s.ranks) {
      int f = 0, b = 0, w = 0;
      for (const PipeOp& op : ops) {
        f += op.kind == PipeOpKind::forward || op.kind == PipeOpKind::forward_backward;
        b += op.kind == PipeOpKind::backward || op.kind == PipeOpKind::forward_backward;
        w += op.kind == PipeOpKind::weight ||
             (op.kind != PipeOpKind::forward && op.with_weight && op.kind != PipeOpKind::weight);
      }
      EXPECT_EQ(f, s.micro_batches);
      EXPECT_EQ(b, s.micro_batches);
      EXPECT_EQ(w, s.micro_batches);
    }
  }
}

TEST(PipelineSchedule, BrokenSchedulesAreCaught) {
  PipeSchedule s = one_f_one_b(2, 2);
  std::swap(s.ranks[1][0], s.ranks[1].back());  // a backward before its forward
  EXPECT_THROW(simulate(s, {1, 1, 1}), Error);
  s = one_f_one_b(2, 2);
  s.ranks[0].pop_back();  // a backward never runs
  EXPECT_THROW(simulate(s, {1, 1, 1}), Error);
  s = one_f_one_b(2, 2);
  s.ranks[0].push_back(s.ranks[0].front());  // a forward runs twice
  EXPECT_THROW(simulate(s, {1, 1, 1}), Error);
}

TEST(PipelineSchedule, ImpossibleShapesAreRefusedByName) {
  EXPECT_THROW(dualpipe(3, 12), Error);  // odd stages
  EXPECT_THROW(dualpipe(4, 6), Error);   // fewer than 2P micro-batches
  EXPECT_THROW(dualpipe(4, 9), Error);   // odd micro-batches
  EXPECT_THROW(one_f_one_b(0, 4), Error);
  EXPECT_THROW(make_pipe_schedule("gpipe", 2, 4), Error);
  EXPECT_EQ(make_pipe_schedule("dualpipe", 2, 4).name, "DualPipe");
}

}  // namespace
}  // namespace tern::train
