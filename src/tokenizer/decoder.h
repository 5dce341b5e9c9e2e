// Decoding ids back to text: the per-token bytes of the ByteLevel decoder (or the plain
// space-joined tokens when a file has no decoder) and StreamDecoder, which emits text as tokens
// arrive without ever splitting a UTF-8 sequence. Owns no vocabulary: it reads Tokenizer's table.
#pragma once

#include <cstdint>
#include <string>

namespace tern::tokenizer {

class Tokenizer;

// Incremental decode for generation: push() returns the text that is final so far; bytes of an
// unfinished UTF-8 sequence are held until the next token completes (or invalidates) them.
// Concatenating all push() results and finish() equals Tokenizer::decode of all ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = false);
  std::string push(int32_t id);
  // Flushes held bytes (an incomplete sequence at the very end becomes U+FFFD).
  std::string finish();

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;
};

// Splits `bytes` at the last point where no UTF-8 sequence is left open: returns the length of
// the prefix that can be emitted now.
size_t utf8_safe_prefix(const std::string& bytes);

}  // namespace tern::tokenizer
