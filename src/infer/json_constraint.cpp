// Masking the vocabulary with the JSON grammar (see json_constraint.h).
#include "infer/json_constraint.h"

#include <algorithm>

#include "core/error.h"

namespace tern::infer {

namespace {

// Whether a token may sit anywhere inside a string body: no quote, backslash or control
// byte, and whole UTF-8 characters only.
bool plain_in_string(const std::string& t) {
  if (t.empty()) return false;
  size_t i = 0;
  while (i < t.size()) {
    const uint8_t c = uint8_t(t[i]);
    if (c == '"' || c == '\\' || c < 0x20) return false;
    uint8_t lo, hi;
    const size_t len = size_t(utf8_lead(c, lo, hi));
    if (len == 0 || i + len > t.size()) return false;
    for (size_t k = 1; k < len; ++k, lo = 0x80, hi = 0xBF)
      if (uint8_t(t[i + k]) < lo || uint8_t(t[i + k]) > hi) return false;
    i += len;
  }
  return true;
}

}  // namespace

ConstraintVocab::ConstraintVocab(std::vector<std::string> token_bytes, std::vector<int32_t> ends)
    : bytes(std::move(token_bytes)), plain(bytes.size()), end_ids(std::move(ends)) {
  for (size_t id = 0; id < bytes.size(); ++id) {
    if (bytes[id].empty()) continue;
    plain[id] = plain_in_string(bytes[id]);
    by_first_byte[uint8_t(bytes[id][0])].push_back(int32_t(id));
  }
  for (int32_t e : end_ids)
    if (e < 0 || size_t(e) >= bytes.size())
      fail(ErrorKind::internal,
           "constraint: end token " + std::to_string(e) + " is outside the vocabulary");
}

JsonConstraint::JsonConstraint(std::shared_ptr<const ConstraintVocab> vocab,
                               std::shared_ptr<const JsonSchema> schema)
    : vocab_(std::move(vocab)), grammar_(std::move(schema)) {
  TERN_CHECK(vocab_ != nullptr);
}

void JsonConstraint::allowed(std::vector<uint8_t>& allowed) {
  const ConstraintVocab& v = *vocab_;
  allowed.assign(v.bytes.size(), 0);
  if (grammar_.complete() || finished_)
    for (int32_t e : v.end_ids) allowed[size_t(e)] = 1;
  if (finished_ || grammar_.closed()) return;
  for (int b = 0; b < 256; ++b) {
    const std::vector<int32_t>& group = v.by_first_byte[size_t(b)];
    if (group.empty()) continue;
    JsonGrammar first = grammar_;
    if (!first.advance(uint8_t(b))) continue;
    const bool free_string = first.in_free_string();
    for (int32_t id : group) {
      const std::string& t = v.bytes[size_t(id)];
      if (t.size() == 1 || (free_string && v.plain[size_t(id)])) {
        allowed[size_t(id)] = 1;
        continue;
      }
      JsonGrammar g = first;
      allowed[size_t(id)] = g.advance(std::string_view(t).substr(1));
    }
  }
  // No token continues the document (a vocabulary without the bytes it needs): end rather than
  // leave the sampler nothing to draw.
  if (std::find(allowed.begin(), allowed.end(), 1) == allowed.end())
    for (int32_t e : v.end_ids) allowed[size_t(e)] = 1;
}

bool JsonConstraint::accept_bytes(std::string_view bytes) {
  if (finished_) return false;
  if (!grammar_.advance(bytes)) {
    finished_ = true;  // the text cannot be continued into a document: stop at once
    return false;
  }
  if (grammar_.closed()) finished_ = true;
  return true;
}

void JsonConstraint::accept(int32_t token) {
  const ConstraintVocab& v = *vocab_;
  if (token < 0 || size_t(token) >= v.bytes.size())
    fail(ErrorKind::internal,
         "constraint: token " + std::to_string(token) + " is outside the vocabulary");
  if (std::find(v.end_ids.begin(), v.end_ids.end(), token) != v.end_ids.end() &&
      grammar_.complete()) {
    finished_ = true;
    return;
  }
  const std::string& t = v.bytes[size_t(token)];
  if (finished_ || t.empty() || !grammar_.advance(t))
    fail(ErrorKind::internal,
         "constraint: token " + std::to_string(token) + " does not continue the JSON document");
  if (grammar_.closed()) finished_ = true;
}

}  // namespace tern::infer
