// GPT-2's bytes_to_unicode table: printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100.. in byte order. Built once into two lookup tables.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace tern::tokenizer {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

struct Tables {
  std::array<std::string, 256> to_char;
  std::array<int16_t, 512> to_byte;  // code point (< 512) -> byte, or -1
  Tables() {
    to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(next++);
      utf8_append(to_char[b], cp);
      to_byte[cp] = int16_t(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::string& byte_to_char(uint8_t b) {
  return tables().to_char[b];
}

std::optional<std::string> chars_to_bytes(std::string_view token) {
  const auto& t = tables();
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    uint32_t cp;
    int n = utf8_decode(token, i, &cp);
    if (n == 0 || cp >= 512 || t.to_byte[cp] < 0) return std::nullopt;
    out.push_back(char(t.to_byte[cp]));
    i += n;
  }
  return out;
}

std::string bytes_to_chars(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += tables().to_char[b];
  return out;
}

}  // namespace tern::tokenizer
