// Streaming decode. A lead byte always starts a new sequence in any parse, so cutting just before
// an unfinished trailing sequence gives the same U+FFFD substitutions as decoding everything at
// once.
#include "tokenizer/decoder.h"

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer {

size_t utf8_safe_prefix(const std::string& bytes) {
  size_t n = bytes.size();
  size_t lo = n >= 3 ? n - 3 : 0;
  for (size_t j = n; j-- > lo;) {
    auto c = static_cast<unsigned char>(bytes[j]);
    if (c < 0x80) return n;
    if (c >= 0xC0) {  // a lead (or invalid lead) byte
      int k = utf8_valid_prefix(bytes, j);
      uint32_t cp;
      bool complete = utf8_decode(bytes, j, &cp) > 0;
      return (k > 0 && !complete) ? j : n;
    }
  }
  return n;
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(&tok), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  if (!tok_->is_known(id)) return {};
  if (skip_special_ && tok_->is_special(id)) return {};
  if (!tok_->byte_level_decoder() && !first_) pending_.push_back(' ');
  first_ = false;
  pending_ += tok_->token_bytes(id);
  size_t cut = utf8_safe_prefix(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, cut));
  pending_.erase(0, cut);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace tern::tokenizer
