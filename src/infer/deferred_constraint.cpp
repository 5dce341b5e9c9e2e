#include "infer/deferred_constraint.h"

#include "core/error.h"

namespace tern::infer {

DeferredConstraint::DeferredConstraint(std::shared_ptr<JsonConstraint> inner,
                                       std::shared_ptr<const ConstraintVocab> vocab,
                                       std::string marker, int32_t marker_id)
    : inner_(std::move(inner)),
      vocab_(std::move(vocab)),
      marker_(std::move(marker)),
      marker_id_(marker_id) {
  TERN_CHECK(inner_ != nullptr && vocab_ != nullptr && !marker_.empty());
}

void DeferredConstraint::allowed(std::vector<uint8_t>& allowed) {
  if (active_) return inner_->allowed(allowed);
  allowed.assign(vocab_->bytes.size(), 1);
}

void DeferredConstraint::accept(int32_t token) {
  if (active_) return inner_->accept(token);
  if (token == marker_id_) {
    active_ = true;
    return;
  }
  if (token < 0 || size_t(token) >= vocab_->bytes.size()) return;
  tail_ += vocab_->bytes[size_t(token)];
  if (const size_t at = tail_.find(marker_); at != std::string::npos) {
    active_ = true;
    inner_->accept_bytes(std::string_view(tail_).substr(at + marker_.size()));
    return;
  }
  if (tail_.size() > marker_.size()) tail_.erase(0, tail_.size() - marker_.size());
}

}  // namespace tern::infer
