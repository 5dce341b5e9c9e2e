// JsonGrammar: a byte-at-a-time recogniser for JSON documents valid under a JsonSchema, the
// state constrained decoding carries between tokens. Each parse is a stack of frames (value,
// object, array, string, number, literal); anyOf and enum fork a parse into several that run
// side by side until the bytes tell them apart, so the state is a small set of parses.
// Whitespace between tokens is allowed up to a run of kMaxWhitespace bytes with at most
// kMaxLineBreaks line breaks (pretty-printing fits; a model cannot loop on blank lines); strings
// must be valid UTF-8 without raw control characters; exponents have at most two digits (so every
// number fits a double).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "infer/json_schema.h"

namespace tern::infer {

struct JsonFrame {
  enum Kind : uint8_t { value, object, array, string, number, literal };
  Kind kind = value;
  uint8_t phase = 0;
  uint8_t pending = 0;  // string: UTF-8 continuation bytes or \u hex digits still due
  uint8_t cont_lo = 0x80, cont_hi = 0xBF;  // string: the range of the next continuation byte
  bool key = false;        // string: an object key (no length limits; matched to properties)
  bool integer = false;    // number: no fraction or exponent
  uint8_t exp_digits = 0;  // number: exponent digits so far
  int32_t node = 0;        // schema node (value, object, array, string)
  int32_t child = 0;       // object: the schema node of the value after the current key
  uint64_t seen = 0;       // object: declared properties already written
  int64_t count = 0;       // array items, string code points, literal or number bytes
  const std::string* lit = nullptr;  // literal: the text it must spell (true, false, null)
  std::vector<int32_t> cands;        // enum literal (lit null): the values still matching
  std::string text;                  // key string: the key's bytes so far
};

// The length of the UTF-8 character lead byte c starts (0: c cannot start one) and the range
// its first continuation byte must lie in (RFC 3629: no overlong forms, no surrogates).
int utf8_lead(uint8_t c, uint8_t& lo, uint8_t& hi);

struct JsonParse {
  std::vector<JsonFrame> frames;
  int32_t whitespace = 0;   // the current run of whitespace bytes
  int32_t line_breaks = 0;  // of which '\n' or '\r'
  bool done = false;        // the top-level value is complete; nothing may follow
};

class JsonGrammar {
 public:
  static constexpr int32_t kMaxWhitespace = 32;
  static constexpr int32_t kMaxLineBreaks = 2;
  static constexpr size_t kMaxParses = 64;

  explicit JsonGrammar(std::shared_ptr<const JsonSchema> schema);

  // Consumes one byte; false (and the state unchanged) when no document continues with it.
  bool advance(uint8_t c);
  // Consumes every byte; false at the first refused one, after which the state is only fit to be
  // discarded (callers try tokens on copies).
  bool advance(std::string_view bytes);
  // The bytes so far form a complete document.
  bool complete() const;
  // Complete, and no byte may follow (every parse has closed its top-level value).
  bool closed() const;
  // The state is one parse inside a string value with no length limit, or a key of an object
  // that takes any name, with no escape or UTF-8 sequence open: any bytes without '"', '\\',
  // control characters or broken UTF-8 fit.
  bool in_free_string() const;

 private:
  void feed(JsonParse p, uint8_t c, std::vector<JsonParse>& out, int depth) const;
  void start_value(JsonParse p, uint8_t c, std::vector<JsonParse>& out, int depth) const;
  void string_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out) const;
  void literal_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out) const;
  void number_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out, int depth) const;
  void object_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out) const;
  void array_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out, int depth) const;
  bool key_possible(const JsonFrame& object) const;

  std::shared_ptr<const JsonSchema> schema_;
  std::vector<JsonParse> parses_;
  std::vector<JsonParse> next_;  // scratch for advance
};

}  // namespace tern::infer
