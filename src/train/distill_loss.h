// Logit distillation (`tern distill --mode logits`): the student learns the teacher's softened
// next-token distribution, Hinton et al.'s knowledge distillation:
//   L = (1 − α) τ² KL(softmax(t/τ) ‖ softmax(s/τ)) + α CE(s, next token),
// τ² keeping the soft term's gradient on the scale of the hard one as τ grows.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/grad/model_grad.h"
#include "model/weights.h"

namespace tern::train {

struct DistillSettings {
  double temperature = 2.0;  // τ > 0
  double hard_weight = 0.0;  // α in [0, 1]
};

// One position: teacher and student logits [V] and the token that follows. Returns L (f64)
// and overwrites `student` with scale · ∂L/∂s = scale · [(1 − α) τ (softmax(s/τ) − softmax(t/τ))
// + α (softmax(s) − onehot)].
double distill_row(const float* teacher, float* student, int64_t V, int32_t target,
                   const DistillSettings& s, double scale);

// L as the last stage's per-row loss (ModelGrad's RowLoss) for the windows in tb, whose teacher
// logits start at `teacher` ([tb.B·tb.T, V]): each row's loss times lw.scale over lw.targets
// (the global batch's count), or over tb's own target count when that is 0. The pointers must
// outlive the returned function's use.
model::grad::RowLoss distill_row_loss(const float* teacher, int64_t V,
                                      const model::grad::TrainBatch& tb, int64_t S,
                                      const model::grad::LossWeights& lw, const DistillSettings& s);

// The student's forward and backward of L averaged over the batch's rows that have a next token
// (times lw.scale), given the teacher's logits [B·T, V] for the batch (train/teacher.h); windows
// are S tokens apart. Gradients accumulate into g; StepResult::main is the mean L.
model::grad::StepResult distill_backward(model::grad::ModelGrad& net,
                                         const std::vector<float>& teacher_logits,
                                         const model::ModelWeights& w, model::ModelWeights& g,
                                         const model::grad::TrainBatch& tb, int64_t S,
                                         const model::grad::LossWeights& lw,
                                         const DistillSettings& s, ThreadPool& pool);

}  // namespace tern::train
