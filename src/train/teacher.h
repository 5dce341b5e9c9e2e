// The teacher of logit distillation: a model loaded for inference (any format `tern run`
// loads) whose next-token logits for every position of a training batch are computed window
// by window, each window its own sequence from position 0, as the student sees it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/grad/model_grad.h"
#include "model/model.h"

namespace tern::train {

class Teacher {
 public:
  // ErrorKind::request when its vocabulary is not the student's (`vocab_size`).
  Teacher(const std::string& path, int64_t student_vocab);
  // logits [B·T, V]: row b·T + i is the teacher's distribution after tokens[b, 0..i]; windows
  // are S tokens apart in b.tokens (the student's window_tokens).
  void logits(const model::grad::TrainBatch& b, int64_t S, std::vector<float>& out) const;
  int64_t vocab() const { return model_.config().vocab_size; }

 private:
  model::Model model_;
};

}  // namespace tern::train
