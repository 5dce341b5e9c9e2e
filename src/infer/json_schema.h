// JsonSchema: the subset of JSON Schema that constrained decoding can guarantee, compiled into
// a flat table of nodes the byte-level grammar (json_grammar.h) walks. Keywords that change
// which documents are valid but that the grammar cannot enforce (pattern, minimum, allOf, ...)
// are refused with ErrorKind::request naming the keyword, never silently ignored; annotations
// (title, description, format, default, examples, ...) are ignored as the standard allows.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tern::infer {

// Bits of SchemaNode::types.
enum JsonTypeBit : uint8_t {
  kJsonNull = 1,
  kJsonBoolean = 2,
  kJsonInteger = 4,
  kJsonNumber = 8,  // includes integers
  kJsonString = 16,
  kJsonArray = 32,
  kJsonObject = 64,
  kJsonAnyType = 127,
};

struct SchemaNode {
  uint8_t types = kJsonAnyType;
  // Alternatives (anyOf / oneOf; oneOf's "exactly one" is not enforced): when non-empty the node
  // is their union and its other fields are unused.
  std::vector<int32_t> any_of;
  // enum / const: the value is exactly one of these compact serialisations.
  std::vector<std::string> literals;
  // Objects: declared properties (the key as it appears between the quotes, JSON-escaped) in
  // any order, each at most once; `required` is a bit per declared property.
  std::vector<std::pair<std::string, int32_t>> properties;
  uint64_t required = 0;
  int32_t additional = 0;  // node for undeclared keys; -1: none allowed
  // Arrays.
  int32_t items = 0;
  int64_t min_items = 0, max_items = -1;  // -1: unbounded
  // Strings, in code points.
  int64_t min_length = 0, max_length = -1;
};

class JsonSchema {
 public:
  static constexpr int32_t kAny = 0;  // node 0: any JSON value

  // Any JSON object (response_format json_object).
  static JsonSchema any_object();
  // A schema document; $ref to "#", "#/$defs/..." and "#/definitions/..." (recursion allowed).
  static JsonSchema compile(const nlohmann::ordered_json& schema);

  int32_t root() const { return root_; }
  const SchemaNode& node(int32_t i) const { return nodes_[size_t(i)]; }

 private:
  JsonSchema();
  std::vector<SchemaNode> nodes_;
  int32_t root_ = kAny;
  friend class SchemaCompiler;
};

}  // namespace tern::infer
