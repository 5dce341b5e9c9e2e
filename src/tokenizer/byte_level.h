// The GPT-2 byte <-> printable-character alphabet used by byte-level BPE vocabularies.
// Owns only the mapping; the ByteLevel pre-tokenizer and decoder live in pre_tokenizer.h and
// decoder.h. The BPE model converts its vocabulary to raw bytes once at load time, so encoding
// never has to translate text into this alphabet.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::tokenizer {

// UTF-8 of the character that stands for byte b in byte-level vocabularies.
const std::string& byte_to_char(uint8_t b);

// Converts a vocabulary string written in the GPT-2 alphabet back to raw bytes; nullopt if any
// character is outside the alphabet (such a token can never come out of byte-level BPE).
std::optional<std::string> chars_to_bytes(std::string_view token);

// Converts raw bytes to the GPT-2 alphabet (used when writing trained vocabularies).
std::string bytes_to_chars(std::string_view bytes);

// The GPT-2 splitting regex that ByteLevel(use_regex=true) applies.
extern const char* const kGpt2Pattern;

}  // namespace tern::tokenizer
