// The JSON recogniser behind constrained decoding (see json_grammar.h). Numbers follow RFC 8259
// (no leading zeros, no '+', no bare '.'); a number ends at the first byte that cannot extend
// it, which is then read by the enclosing object or array.
#include "infer/json_grammar.h"

#include "core/error.h"

namespace tern::infer {

namespace {

enum ObjectPhase : uint8_t { kObjOpen, kObjKey, kObjColon, kObjAfter };
enum ArrayPhase : uint8_t { kArrOpen, kArrExpect, kArrAfter };
enum StringPhase : uint8_t { kStrBody, kStrEscape, kStrHex };
// Number phases; the accepting ones are kZero, kInt, kFrac and kExpDigits.
enum NumberPhase : uint8_t { kMinus, kZero, kInt, kDot, kFrac, kExp, kExpSign, kExpDigits };
constexpr int64_t kMaxNumberBytes = 40;
constexpr uint8_t kMaxExponentDigits = 2;
constexpr int kMaxAliasDepth = 32;  // anyOf / $ref expansions for one byte

const std::string kTrue = "true", kFalse = "false", kNull = "null";

bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(uint8_t c) {
  return c >= '0' && c <= '9';
}
bool is_hex(uint8_t c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool number_accepting(uint8_t phase) {
  return phase == kZero || phase == kInt || phase == kFrac || phase == kExpDigits;
}

// Counts a whitespace byte into the current run; false when the run would pass the limits
// (kMaxWhitespace bytes, kMaxLineBreaks of them '\n' or '\r'): room for pretty-printing, none
// for a model that would rather write blank lines forever.
bool more_whitespace(JsonParse& p, uint8_t c) {
  if ((c == '\n' || c == '\r') && ++p.line_breaks > JsonGrammar::kMaxLineBreaks) return false;
  return ++p.whitespace <= JsonGrammar::kMaxWhitespace;
}

JsonFrame value_frame(int32_t node) {
  JsonFrame f;
  f.kind = JsonFrame::value;
  f.node = node;
  return f;
}

// The top frame's value is complete: hand control back to its container.
void pop_done(JsonParse& p) {
  p.frames.pop_back();
  p.whitespace = p.line_breaks = 0;
  if (p.frames.empty()) {
    p.done = true;
    return;
  }
  JsonFrame& parent = p.frames.back();
  if (parent.kind == JsonFrame::object) {
    parent.phase = kObjAfter;
  } else if (parent.kind == JsonFrame::array) {
    parent.count += 1;
    parent.phase = kArrAfter;
  }
}

}  // namespace

int utf8_lead(uint8_t c, uint8_t& lo, uint8_t& hi) {
  lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) {
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    return 4;
  }
  return 0;
}

JsonGrammar::JsonGrammar(std::shared_ptr<const JsonSchema> schema) : schema_(std::move(schema)) {
  TERN_CHECK(schema_ != nullptr);
  JsonParse p;
  p.frames.push_back(value_frame(schema_->root()));
  parses_.push_back(std::move(p));
}

bool JsonGrammar::advance(uint8_t c) {
  next_.clear();
  for (const JsonParse& p : parses_) {
    feed(p, c, next_, 0);
    if (next_.size() >= kMaxParses) break;
  }
  if (next_.empty()) return false;
  if (next_.size() > kMaxParses) next_.resize(kMaxParses);
  parses_.swap(next_);
  next_.clear();  // keeps copies of the grammar (one per token tried) cheap
  return true;
}

bool JsonGrammar::advance(std::string_view bytes) {
  // The state may be left broken on failure, so each parse is moved, not copied, per byte.
  for (char ch : bytes) {
    next_.clear();
    for (JsonParse& p : parses_) {
      feed(std::move(p), uint8_t(ch), next_, 0);
      if (next_.size() >= kMaxParses) break;
    }
    if (next_.empty()) return false;
    if (next_.size() > kMaxParses) next_.resize(kMaxParses);
    parses_.swap(next_);
  }
  next_.clear();
  return true;
}

bool JsonGrammar::complete() const {
  for (const JsonParse& p : parses_) {
    if (p.done) return true;
    if (p.frames.size() == 1 && p.frames[0].kind == JsonFrame::number &&
        number_accepting(p.frames[0].phase))
      return true;
  }
  return false;
}

bool JsonGrammar::closed() const {
  for (const JsonParse& p : parses_)
    if (!p.done) return false;
  return true;
}

bool JsonGrammar::in_free_string() const {
  if (parses_.size() != 1 || parses_[0].frames.empty()) return false;
  const std::vector<JsonFrame>& frames = parses_[0].frames;
  const JsonFrame& f = frames.back();
  if (f.kind != JsonFrame::string || f.phase != kStrBody || f.pending != 0) return false;
  // A key is free when the object takes any name (its text is then only kept, not matched).
  if (f.key) return schema_->node(frames[frames.size() - 2].node).additional >= 0;
  return schema_->node(f.node).max_length < 0;
}

void JsonGrammar::feed(JsonParse p, uint8_t c, std::vector<JsonParse>& out, int depth) const {
  if (p.done) {  // only whitespace may follow the document
    if (is_space(c) && more_whitespace(p, c)) out.push_back(std::move(p));
    return;
  }
  if (p.frames.empty()) return;
  const JsonFrame& top = p.frames.back();
  if (is_space(c) && (top.kind == JsonFrame::value || top.kind == JsonFrame::object ||
                      top.kind == JsonFrame::array)) {
    if (!more_whitespace(p, c)) return;
    out.push_back(std::move(p));
    return;
  }
  switch (top.kind) {
    case JsonFrame::value:
      start_value(std::move(p), c, out, depth);
      return;
    case JsonFrame::literal:
      literal_byte(std::move(p), c, out);
      return;
    case JsonFrame::string:
      string_byte(std::move(p), c, out);
      return;
    case JsonFrame::number:
      number_byte(std::move(p), c, out, depth);
      return;
    case JsonFrame::object:
      object_byte(std::move(p), c, out);
      return;
    case JsonFrame::array:
      array_byte(std::move(p), c, out, depth);
      return;
  }
}

void JsonGrammar::start_value(JsonParse p, uint8_t c, std::vector<JsonParse>& out,
                              int depth) const {
  p.whitespace = p.line_breaks = 0;
  JsonFrame& f = p.frames.back();
  const SchemaNode& n = schema_->node(f.node);
  if (!n.any_of.empty()) {
    if (depth >= kMaxAliasDepth) return;  // a reference that only names itself
    for (int32_t alt : n.any_of) {
      JsonParse q = p;
      q.frames.back().node = alt;
      start_value(std::move(q), c, out, depth + 1);
    }
    return;
  }
  if (!n.literals.empty()) {
    // One frame follows every enum value at once (a fork per value would overflow kMaxParses
    // for long enums): the candidates still matching, narrowed byte by byte.
    f.kind = JsonFrame::literal;
    f.lit = nullptr;
    f.count = 0;
    f.cands.resize(n.literals.size());
    for (size_t i = 0; i < n.literals.size(); ++i) f.cands[i] = int32_t(i);
    literal_byte(std::move(p), c, out);
    return;
  }
  const uint8_t t = n.types;
  if (c == '{' && (t & kJsonObject)) {
    f.kind = JsonFrame::object;
    f.phase = kObjOpen;
  } else if (c == '[' && (t & kJsonArray)) {
    f.kind = JsonFrame::array;
    f.phase = kArrOpen;
  } else if (c == '"' && (t & kJsonString)) {
    f.kind = JsonFrame::string;
    f.phase = kStrBody;
  } else if ((c == '-' || is_digit(c)) && (t & (kJsonInteger | kJsonNumber))) {
    f.kind = JsonFrame::number;
    f.integer = !(t & kJsonNumber);
    f.phase = c == '-' ? kMinus : c == '0' ? kZero : kInt;
    f.count = 1;
  } else if ((c == 't' || c == 'f') && (t & kJsonBoolean)) {
    f.kind = JsonFrame::literal;
    f.lit = c == 't' ? &kTrue : &kFalse;
    f.count = 1;
  } else if (c == 'n' && (t & kJsonNull)) {
    f.kind = JsonFrame::literal;
    f.lit = &kNull;
    f.count = 1;
  } else {
    return;
  }
  out.push_back(std::move(p));
}

void JsonGrammar::literal_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out) const {
  JsonFrame& f = p.frames.back();
  if (f.lit) {  // true, false, null
    if (uint8_t((*f.lit)[size_t(f.count)]) != c) return;
    if (++f.count == int64_t(f.lit->size())) pop_done(p);
    out.push_back(std::move(p));
    return;
  }
  const std::vector<std::string>& lits = schema_->node(f.node).literals;
  const size_t at = size_t(f.count);
  std::vector<int32_t> longer;
  bool ends = false;
  for (int32_t i : f.cands) {
    const std::string& s = lits[size_t(i)];
    if (at >= s.size() || uint8_t(s[at]) != c) continue;
    if (at + 1 == s.size())
      ends = true;
    else
      longer.push_back(i);
  }
  if (!ends && longer.empty()) return;
  f.count += 1;
  if (ends) {  // a value is complete here (another may go on: enum [1, 12])
    JsonParse done = longer.empty() ? std::move(p) : p;
    pop_done(done);
    out.push_back(std::move(done));
    if (longer.empty()) return;
  }
  p.frames.back().cands = std::move(longer);
  out.push_back(std::move(p));
}

void JsonGrammar::string_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out) const {
  JsonFrame& f = p.frames.back();
  const int64_t max_len = f.key ? -1 : schema_->node(f.node).max_length;
  const bool room = max_len < 0 || f.count < max_len;
  const bool closing = c == '"' && f.phase == kStrBody && f.pending == 0;
  if (f.key && !closing) {
    // Keys are matched against the declared properties as they are written.
    f.text.push_back(char(c));
    const JsonFrame& obj = p.frames[p.frames.size() - 2];
    const SchemaNode& on = schema_->node(obj.node);
    if (on.additional < 0) {
      bool any = false;
      for (size_t i = 0; i < on.properties.size() && !any; ++i)
        any = !(obj.seen >> i & 1) && on.properties[i].first.starts_with(f.text);
      if (!any) return;
    }
  }
  switch (f.phase) {
    case kStrEscape:
      if (c == 'u') {
        f.phase = kStrHex;
        f.pending = 4;
      } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                 c == 'r' || c == 't') {
        f.phase = kStrBody;
        f.count += 1;
      } else {
        return;
      }
      break;
    case kStrHex:
      if (!is_hex(c)) return;
      if (--f.pending == 0) {
        f.phase = kStrBody;
        f.count += 1;
      }
      break;
    default:
      if (f.pending > 0) {  // inside a multi-byte UTF-8 character
        if (c < f.cont_lo || c > f.cont_hi) return;
        f.cont_lo = 0x80, f.cont_hi = 0xBF;
        --f.pending;
      } else if (c == '"') {
        if (f.key) {
          JsonFrame& obj = p.frames[p.frames.size() - 2];
          const SchemaNode& on = schema_->node(obj.node);
          size_t i = 0;
          while (i < on.properties.size() && on.properties[i].first != f.text) ++i;
          if (i < on.properties.size()) {
            if (obj.seen >> i & 1) return;  // each declared property once
            obj.seen |= uint64_t(1) << i;
            obj.child = on.properties[i].second;
          } else if (on.additional >= 0) {
            obj.child = on.additional;
          } else {
            return;
          }
          p.frames.pop_back();
          obj.phase = kObjColon;
        } else {
          if (f.count < schema_->node(f.node).min_length) return;
          pop_done(p);
        }
      } else if (!room || c < 0x20) {
        return;
      } else if (c == '\\') {
        f.phase = kStrEscape;
      } else {
        const int len = utf8_lead(c, f.cont_lo, f.cont_hi);
        if (len == 0) return;  // a continuation byte without a lead, or one UTF-8 never uses
        f.pending = uint8_t(len - 1);
        f.count += 1;
      }
  }
  out.push_back(std::move(p));
}

void JsonGrammar::number_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out,
                              int depth) const {
  JsonFrame& f = p.frames.back();
  uint8_t next = 255;  // 255: c does not extend the number
  switch (f.phase) {
    case kMinus:
      if (is_digit(c)) next = c == '0' ? kZero : kInt;
      break;
    case kZero:
    case kInt:
      if (f.phase == kInt && is_digit(c))
        next = kInt;
      else if (!f.integer && c == '.')
        next = kDot;
      else if (!f.integer && (c == 'e' || c == 'E'))
        next = kExp;
      break;
    case kDot:
    case kFrac:
      if (is_digit(c))
        next = kFrac;
      else if (f.phase == kFrac && (c == 'e' || c == 'E'))
        next = kExp;
      break;
    case kExp:
      if (c == '+' || c == '-')
        next = kExpSign;
      else if (is_digit(c))
        next = kExpDigits;
      break;
    case kExpSign:
      if (is_digit(c)) next = kExpDigits;
      break;
    case kExpDigits:
      // Two exponent digits at most: 1e308 and beyond overflow a double in most readers.
      if (is_digit(c) && f.exp_digits < kMaxExponentDigits) next = kExpDigits;
      break;
  }
  if (next != 255) {
    // The last byte a number may have must leave it complete: no dead end at the limit.
    if (f.count + 1 > kMaxNumberBytes ||
        (f.count + 1 == kMaxNumberBytes && !number_accepting(next)))
      return;
    ++f.count;
    f.exp_digits = next == kExpDigits ? uint8_t(f.exp_digits + 1) : 0;
    f.phase = next;
    out.push_back(std::move(p));
    return;
  }
  if (!number_accepting(f.phase)) return;
  pop_done(p);
  feed(std::move(p), c, out, depth);  // the byte belongs to the container
}

bool JsonGrammar::key_possible(const JsonFrame& object) const {
  const SchemaNode& n = schema_->node(object.node);
  if (n.additional >= 0) return true;
  for (size_t i = 0; i < n.properties.size(); ++i)
    if (!(object.seen >> i & 1)) return true;
  return false;
}

void JsonGrammar::object_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out) const {
  p.whitespace = p.line_breaks = 0;
  JsonFrame& f = p.frames.back();
  const SchemaNode& n = schema_->node(f.node);
  const bool can_close = (f.seen & n.required) == n.required;
  switch (f.phase) {
    case kObjOpen:
    case kObjKey:
      if (c == '"' && key_possible(f)) {
        JsonFrame k;
        k.kind = JsonFrame::string;
        k.key = true;
        p.frames.push_back(std::move(k));
      } else if (c == '}' && f.phase == kObjOpen && can_close) {
        pop_done(p);
      } else {
        return;
      }
      break;
    case kObjColon:
      if (c != ':') return;
      f.phase = kObjAfter;
      p.frames.push_back(value_frame(f.child));
      break;
    default:  // kObjAfter
      if (c == ',' && key_possible(f)) {
        f.phase = kObjKey;
      } else if (c == '}' && can_close) {
        pop_done(p);
      } else {
        return;
      }
  }
  out.push_back(std::move(p));
}

void JsonGrammar::array_byte(JsonParse p, uint8_t c, std::vector<JsonParse>& out, int depth) const {
  JsonFrame& f = p.frames.back();
  const SchemaNode& n = schema_->node(f.node);
  if (f.phase == kArrAfter) {
    p.whitespace = p.line_breaks = 0;
    if (c == ',' && (n.max_items < 0 || f.count < n.max_items)) {
      f.phase = kArrExpect;
    } else if (c == ']' && f.count >= n.min_items) {
      pop_done(p);
    } else {
      return;
    }
    out.push_back(std::move(p));
    return;
  }
  if (c == ']' && f.phase == kArrOpen) {
    if (n.min_items > 0) return;
    p.whitespace = p.line_breaks = 0;
    pop_done(p);
    out.push_back(std::move(p));
    return;
  }
  if (n.max_items == 0) return;
  f.phase = kArrAfter;
  const int32_t items = n.items;
  p.frames.push_back(value_frame(items));
  start_value(std::move(p), c, out, depth);
}

}  // namespace tern::infer
