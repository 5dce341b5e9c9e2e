// JsonConstraint: constrained decoding to a JSON document valid under a JsonSchema
// (response_format json_object / json_schema, `tern run --json-schema`). The vocabulary's byte
// strings are indexed once (ConstraintVocab, shared by every sequence of a server); each step
// the allowed set is found by trying each token's bytes on a copy of the grammar state, after
// two cuts that keep that cheap: only tokens whose first byte the grammar accepts are tried,
// and inside a free string every token that cannot end or escape the string is allowed at once.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "infer/json_grammar.h"
#include "infer/token_constraint.h"

namespace tern::infer {

struct ConstraintVocab {
  // token_bytes[id]: what the token decodes to; empty for tokens that never appear inside
  // generated text (special and unused ids). end_ids: tokens that end generation.
  ConstraintVocab(std::vector<std::string> token_bytes, std::vector<int32_t> end_ids);

  std::vector<std::string> bytes;
  std::vector<uint8_t> plain;  // fits anywhere inside a string body (see JsonGrammar)
  std::array<std::vector<int32_t>, 256> by_first_byte;
  std::vector<int32_t> end_ids;
};

class JsonConstraint final : public TokenConstraint {
 public:
  JsonConstraint(std::shared_ptr<const ConstraintVocab> vocab,
                 std::shared_ptr<const JsonSchema> schema);

  void allowed(std::vector<uint8_t>& allowed) override;
  void accept(int32_t token) override;
  bool finished() const override { return finished_; }
  // Feeds text that was generated outside the grammar's control (what followed "</think>" in
  // the same token); false, and finished, when no document can continue from it.
  bool accept_bytes(std::string_view bytes);

  const JsonGrammar& grammar() const { return grammar_; }

 private:
  std::shared_ptr<const ConstraintVocab> vocab_;
  JsonGrammar grammar_;
  bool finished_ = false;
};

}  // namespace tern::infer
