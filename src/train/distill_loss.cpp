#include "train/distill_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tern::train {

namespace {

// log-softmax of x/τ in double: out[v] = x[v]/τ − logΣ exp(x/τ).
void log_softmax(const float* x, int64_t V, double tau, std::vector<double>& out) {
  out.resize(size_t(V));
  double mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(x[v]) / tau);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(x[v]) / tau - mx);
  const double lse = mx + std::log(sum);
  for (int64_t v = 0; v < V; ++v) out[size_t(v)] = double(x[v]) / tau - lse;
}

}  // namespace

double distill_row(const float* teacher, float* student, int64_t V, int32_t target,
                   const DistillSettings& s, double scale) {
  thread_local std::vector<double> lt, ls, l1;
  const double tau = s.temperature, a = s.hard_weight;
  log_softmax(teacher, V, tau, lt);
  log_softmax(student, V, tau, ls);
  double kl = 0;
  for (int64_t v = 0; v < V; ++v) {
    const double pt = std::exp(lt[size_t(v)]);
    if (pt > 0) kl += pt * (lt[size_t(v)] - ls[size_t(v)]);
  }
  double loss = (1 - a) * tau * tau * kl;
  if (a > 0) {
    log_softmax(student, V, 1.0, l1);
    loss += a * -l1[size_t(target)];
  }
  for (int64_t v = 0; v < V; ++v) {
    double g = (1 - a) * tau * (std::exp(ls[size_t(v)]) - std::exp(lt[size_t(v)]));
    if (a > 0) g += a * (std::exp(l1[size_t(v)]) - (v == target ? 1.0 : 0.0));
    student[v] = float(scale * g);
  }
  return loss;
}

model::grad::StepResult distill_backward(model::grad::ModelGrad& net,
                                         const std::vector<float>& teacher_logits,
                                         const model::ModelWeights& w, model::ModelWeights& g,
                                         const model::grad::TrainBatch& tb, int64_t S,
                                         const model::grad::LossWeights& lw,
                                         const DistillSettings& s, ThreadPool& pool) {
  const int64_t rows = tb.B * tb.T;
  const int64_t V = int64_t(teacher_logits.size()) / std::max<int64_t>(rows, 1);
  return net.step_row_loss(w, g, tb, distill_row_loss(teacher_logits.data(), V, tb, S, lw, s), lw,
                           pool);
}

model::grad::RowLoss distill_row_loss(const float* teacher, int64_t V,
                                      const model::grad::TrainBatch& tb, int64_t S,
                                      const model::grad::LossWeights& lw,
                                      const DistillSettings& s) {
  int64_t targets = 0;
  for (int64_t b = 0; b < tb.B; ++b)
    for (int64_t i = 0; i < tb.T; ++i) targets += tb.docs[b * S + i + 1] == tb.docs[b * S + i];
  // Data parallel and pipeline micro-batches: lw.targets is the global batch's count, so the
  // pieces' gradients sum to one process's.
  const double n = lw.targets > 0 ? lw.targets : double(std::max<int64_t>(targets, 1));
  const double scale = double(lw.scale) / n;
  const int64_t T = tb.T;
  const int32_t* tokens = tb.tokens;
  return [teacher, V, T, tokens, S, s, scale](int64_t row, float* logits, int64_t v) {
    const int64_t b = row / T, i = row % T;
    return distill_row(teacher + row * V, logits, v, tokens[b * S + i + 1], s, scale);
  };
}

}  // namespace tern::train
