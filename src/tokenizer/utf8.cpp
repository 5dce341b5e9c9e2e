// UTF-8 decoding and repair, written out by hand because the tokenizer needs the exact
// maximal-subpart semantics of the reference decoder, which no standard facility guarantees.
#include "tokenizer/utf8.h"

#include <unicode/uchar.h>

namespace tern::tokenizer {

namespace {

// Allowed range of the second byte given the lead byte (Unicode Table 3-7).
bool second_ok(unsigned char lead, unsigned char b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

int seq_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Length of the maximal prefix of a well-formed sequence at s[i] (>= 1 for a valid lead byte),
// and whether it is complete.
int maximal_prefix(std::string_view s, size_t i, bool* complete) {
  auto lead = static_cast<unsigned char>(s[i]);
  int n = seq_len(lead);
  *complete = false;
  if (n == 0) return 0;
  if (n == 1) {
    *complete = true;
    return 1;
  }
  int k = 1;
  for (; k < n && i + k < s.size(); ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    bool ok = (k == 1) ? second_ok(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return k;
  }
  *complete = (k == n);
  return k;
}

}  // namespace

int utf8_decode(std::string_view s, size_t i, uint32_t* cp) {
  bool complete = false;
  int n = maximal_prefix(s, i, &complete);
  if (!complete) return 0;
  auto lead = static_cast<unsigned char>(s[i]);
  uint32_t c = n == 1 ? lead : n == 2 ? (lead & 0x1F) : n == 3 ? (lead & 0x0F) : (lead & 0x07);
  for (int k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *cp = c;
  return n;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

int utf8_valid_prefix(std::string_view s, size_t i) {
  bool complete = false;
  int n = maximal_prefix(s, i, &complete);
  if (complete) return n;
  // Incomplete is only "possibly valid" if the sequence ran into the end of the buffer.
  return (n > 0 && i + n == s.size()) ? n : 0;
}

bool utf8_is_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    uint32_t cp;
    int n = utf8_decode(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  if (utf8_is_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    bool complete = false;
    int n = maximal_prefix(s, i, &complete);
    if (complete) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

bool is_unicode_whitespace(uint32_t cp) {
  return u_isUWhiteSpace(UChar32(cp));
}

bool is_word_char(uint32_t cp) {
  if (cp == '_') return true;
  if (u_hasBinaryProperty(UChar32(cp), UCHAR_ALPHABETIC)) return true;
  auto cat = u_charType(UChar32(cp));
  return cat == U_DECIMAL_DIGIT_NUMBER || cat == U_LETTER_NUMBER || cat == U_OTHER_NUMBER;
}

}  // namespace tern::tokenizer
