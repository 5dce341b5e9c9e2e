// DeferredConstraint: leaves every token free until a marker has been generated, then applies
// another constraint. A reasoning model (R1) asked for JSON thinks first, freely, and the JSON
// grammar starts after "</think>"; constraining from the first token would force the document
// into the reasoning block.
#pragma once

#include <memory>
#include <string>

#include "infer/json_constraint.h"
#include "infer/token_constraint.h"

namespace tern::infer {

class DeferredConstraint final : public TokenConstraint {
 public:
  // The marker is seen as the token `marker_id` (>= 0 when the vocabulary has it as one token)
  // or as text across the generated tokens' bytes; what follows it in the same token is fed to
  // the grammar.
  DeferredConstraint(std::shared_ptr<JsonConstraint> inner,
                     std::shared_ptr<const ConstraintVocab> vocab, std::string marker,
                     int32_t marker_id);

  void allowed(std::vector<uint8_t>& allowed) override;
  void accept(int32_t token) override;
  bool finished() const override { return active_ && inner_->finished(); }
  bool active() const { return active_; }

 private:
  std::shared_ptr<JsonConstraint> inner_;
  std::shared_ptr<const ConstraintVocab> vocab_;
  std::string marker_, tail_;  // tail_: the last bytes generated, to find a marker split up
  int32_t marker_id_;
  bool active_ = false;
};

}  // namespace tern::infer
