// UTF-8 helpers for the tokenizer: decoding one code point, lossy repair of invalid input (the
// same U+FFFD substitution as Rust's String::from_utf8_lossy) and the Unicode classes that the
// added-token rules use. Does not own normalisation (normalizer.h) or regexes (regex.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tern::tokenizer {

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 if it is invalid or
// truncated. On success writes the code point to *cp.
int utf8_decode(std::string_view s, size_t i, uint32_t* cp);

// Appends the UTF-8 encoding of cp.
void utf8_append(std::string& out, uint32_t cp);

// Number of leading bytes of s[i..] that form a *possibly incomplete but not yet invalid* sequence
// (used by the streaming decoder to hold back bytes): returns 0 if s[i..] cannot start a
// well-formed sequence at all.
int utf8_valid_prefix(std::string_view s, size_t i);

// True if s is well-formed UTF-8.
bool utf8_is_valid(std::string_view s);

// Replaces each maximal invalid subpart with U+FFFD (Unicode's recommended practice, which
// Rust's from_utf8_lossy and therefore the reference decoder follow). Valid input is returned as
// is.
std::string utf8_lossy(std::string_view s);

// Unicode White_Space (Rust char::is_whitespace).
bool is_unicode_whitespace(uint32_t cp);
// Rust char::is_alphanumeric() || '_' (the added-token "single_word" boundary rule).
bool is_word_char(uint32_t cp);

}  // namespace tern::tokenizer
