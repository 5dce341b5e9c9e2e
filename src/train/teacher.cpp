#include "train/teacher.h"

#include <span>

#include "core/error.h"
#include "model/kv_cache.h"

namespace tern::train {

Teacher::Teacher(const std::string& path, int64_t student_vocab)
    : model_(model::Model::load(path)) {
  if (model_.config().vocab_size != student_vocab)
    fail(ErrorKind::request,
         "--teacher " + path + ": its vocabulary has " +
             std::to_string(model_.config().vocab_size) + " entries and the student's " +
             std::to_string(student_vocab) +
             "; logit distillation compares distributions token by token, so they must be the "
             "same (give the student the teacher's vocab_size and tokenizer)");
  if (model_.config().max_position_embeddings < 2)
    fail(ErrorKind::config, "--teacher " + path + ": no context");
}

void Teacher::logits(const model::grad::TrainBatch& b, int64_t S, std::vector<float>& out) const {
  const int64_t V = vocab();
  if (b.T > model_.config().max_position_embeddings)
    fail(ErrorKind::request, "--seq " + std::to_string(b.T) + " exceeds the teacher's context of " +
                                 std::to_string(model_.config().max_position_embeddings));
  out.resize(size_t(b.B * b.T * V));
  for (int64_t w = 0; w < b.B; ++w) {
    model::KvCache cache = model_.make_cache(b.T);
    model_.forward(std::span<const int32_t>(b.tokens + w * S, size_t(b.T)), cache,
                   std::span<float>(out.data() + w * b.T * V, size_t(b.T * V)));
  }
}

}  // namespace tern::train
