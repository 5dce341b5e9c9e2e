// TokenConstraint: a rule on which tokens may come next (a grammar), applied by the Sampler
// before any other cut so that every sampling mode, greedy included, obeys it. One per
// sequence: it carries that sequence's state and advances with each accepted token.
#pragma once

#include <cstdint>
#include <vector>

namespace tern::infer {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // allowed[id] = 1 for the tokens that may come next, 0 for the others (resized to the
  // vocabulary). Once finished() only end-of-generation tokens are allowed.
  virtual void allowed(std::vector<uint8_t>& allowed) = 0;
  // Records a generated token; ErrorKind::internal for one allowed() did not allow.
  virtual void accept(int32_t token) = 0;
  // The output is complete: generation should end here.
  virtual bool finished() const = 0;
};

}  // namespace tern::infer
