// The lexer works on a preprocessed copy of the template that remembers, for every byte, where it
// came from; the preprocessing mirrors the reference renderer's text rewrites exactly.
#include "tokenizer/jinja/lexer.h"

#include <cctype>
#include <cstring>

#include "core/error.h"

namespace tern::tokenizer::jinja {

namespace {

struct Src {
  std::string s;
  std::vector<size_t> origin;  // origin[i]: offset of s[i] in the template
};

Src preprocess(const std::string& t) {
  Src a;
  size_t n = t.size();
  if (n > 0 && t[n - 1] == '\n') --n;  // keep_trailing_newline=False
  // lstrip_blocks: drop spaces/tabs that start a line before "{%", "{#" (or "{-").
  for (size_t i = 0; i < n;) {
    if (i == 0 || t[i - 1] == '\n') {
      size_t j = i;
      while (j < n && (t[j] == ' ' || t[j] == '\t')) ++j;
      if (j > i && j + 1 < n && t[j] == '{' && std::strchr("#%-", t[j + 1])) i = j;
    }
    a.s.push_back(t[i]);
    a.origin.push_back(i);
    ++i;
  }
  // trim_blocks: drop the newline right after "%}", "#}" (or "-}").
  Src b;
  for (size_t i = 0; i < a.s.size(); ++i) {
    b.s.push_back(a.s[i]);
    b.origin.push_back(a.origin[i]);
    if (a.s[i] == '}' && i > 0 && std::strchr("#%-", a.s[i - 1]) && i + 1 < a.s.size() &&
        a.s[i + 1] == '\n')
      ++i;
  }
  // {% generation %} / {% endgeneration %} only mark spans for training masks: remove them.
  Src c;
  for (size_t i = 0; i < b.s.size();) {
    if (b.s.compare(i, 2, "{%") == 0) {
      size_t j = i + 2;
      bool lstrip = j < b.s.size() && b.s[j] == '-';
      if (lstrip) ++j;
      while (j < b.s.size() && std::isspace(static_cast<unsigned char>(b.s[j]))) ++j;
      size_t k = j;
      if (b.s.compare(k, 3, "end") == 0) k += 3;
      if (b.s.compare(k, 10, "generation") == 0) {
        k += 10;
        while (k < b.s.size() && std::isspace(static_cast<unsigned char>(b.s[k]))) ++k;
        bool rstrip = k < b.s.size() && b.s[k] == '-';
        if (rstrip) ++k;
        if (b.s.compare(k, 2, "%}") == 0) {
          k += 2;
          if (lstrip)
            while (!c.s.empty() && std::isspace(static_cast<unsigned char>(c.s.back())))
              c.s.pop_back(), c.origin.pop_back();
          if (rstrip)
            while (k < b.s.size() && std::isspace(static_cast<unsigned char>(b.s[k]))) ++k;
          i = k;
          continue;
        }
      }
    }
    c.s.push_back(b.s[i]);
    c.origin.push_back(b.origin[i]);
    ++i;
  }
  return c;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

std::string position(const std::string& source, size_t offset) {
  int line = 1, col = 1;
  for (size_t i = 0; i < offset && i < source.size(); ++i) {
    if (source[i] == '\n')
      ++line, col = 1;
    else if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80)
      ++col;
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

std::vector<Token> lex(const std::string& source) {
  Src src = preprocess(source);
  const std::string& s = src.s;
  std::vector<Token> out;
  auto at = [&](size_t i) { return i < src.origin.size() ? src.origin[i] : source.size(); };
  auto err = [&](size_t i, const std::string& msg) {
    fail(ErrorKind::format, "chat template " + position(source, at(i)) + ": " + msg);
  };
  // Tokens come in source order, so line/column are advanced incrementally.
  size_t cursor = 0;
  int cur_line = 1, cur_col = 1;
  auto make = [&](Token::Kind k, std::string text, size_t i) {
    Token t{k, std::move(text)};
    for (size_t o = at(i); cursor < o && cursor < source.size(); ++cursor) {
      if (source[cursor] == '\n')
        ++cur_line, cur_col = 1;
      else if ((static_cast<unsigned char>(source[cursor]) & 0xC0) != 0x80)
        ++cur_col;
    }
    t.line = cur_line;
    t.col = cur_col;
    return t;
  };
  bool strip_next_text = false;
  size_t i = 0;
  while (i < s.size()) {
    // Raw text up to the next tag.
    size_t tag = s.find('{', i);
    while (tag != std::string::npos && tag + 1 < s.size() && !std::strchr("{%#", s[tag + 1]))
      tag = s.find('{', tag + 1);
    if (tag + 1 >= s.size()) tag = std::string::npos;
    std::string text = s.substr(i, tag == std::string::npos ? std::string::npos : tag - i);
    if (strip_next_text) {
      size_t k = 0;
      while (k < text.size() && is_space(text[k])) ++k;
      text.erase(0, k);
    }
    strip_next_text = false;
    size_t text_pos = i;
    if (tag == std::string::npos) {
      if (!text.empty()) out.push_back(make(Token::Kind::text, text, text_pos));
      break;
    }
    char kind = s[tag + 1];
    size_t j = tag + 2;
    if (j < s.size() && s[j] == '-') {
      while (!text.empty() && is_space(text.back())) text.pop_back();
      ++j;
    } else if (j < s.size() && s[j] == '+') {
      ++j;
    }
    if (!text.empty()) out.push_back(make(Token::Kind::text, text, text_pos));
    if (kind == '#') {
      size_t end = s.find("#}", j);
      if (end == std::string::npos) err(tag, "unclosed comment");
      strip_next_text = end > 0 && s[end - 1] == '-';
      i = end + 2;
      continue;
    }
    out.push_back(make(kind == '{' ? Token::Kind::var_open : Token::Kind::block_open, "", tag));
    // Expression tokens until the matching close.
    int depth = 0;
    bool closed = false;
    while (j < s.size()) {
      char c = s[j];
      if (is_space(c)) {
        ++j;
        continue;
      }
      // Close markers, optionally with "-" or "+".
      size_t k = j;
      bool minus = false;
      if ((c == '-' || c == '+') && j + 1 < s.size()) {
        minus = c == '-';
        k = j + 1;
      }
      if (kind == '{' && depth == 0 && s.compare(k, 2, "}}") == 0) {
        out.push_back(make(Token::Kind::var_close, "", j));
        strip_next_text = minus && k != j;
        j = k + 2;
        closed = true;
        break;
      }
      if (kind == '%' && s.compare(k, 2, "%}") == 0) {
        out.push_back(make(Token::Kind::block_close, "", j));
        strip_next_text = minus && k != j;
        j = k + 2;
        closed = true;
        break;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = j;
        while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
        out.push_back(make(Token::Kind::name, s.substr(j, e - j), j));
        j = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = j;
        while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
        bool is_float =
            e + 1 < s.size() && s[e] == '.' && std::isdigit(static_cast<unsigned char>(s[e + 1]));
        if (is_float) {
          ++e;
          while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
        }
        std::string num;
        for (size_t q = j; q < e; ++q)
          if (s[q] != '_') num += s[q];
        Token t = make(is_float ? Token::Kind::floating : Token::Kind::integer, num, j);
        if (is_float)
          t.fval = std::strtod(num.c_str(), nullptr);
        else
          t.ival = std::strtoll(num.c_str(), nullptr, 10);
        out.push_back(t);
        j = e;
      } else if (c == '\'' || c == '"') {
        std::string val;
        size_t e = j + 1;
        while (e < s.size() && s[e] != c) {
          if (s[e] == '\\' && e + 1 < s.size()) {
            char x = s[++e];
            switch (x) {
              case 'n':
                val += '\n';
                break;
              case 't':
                val += '\t';
                break;
              case 'r':
                val += '\r';
                break;
              case 'b':
                val += '\b';
                break;
              case 'f':
                val += '\f';
                break;
              case 'v':
                val += '\v';
                break;
              case '0':
                val += '\0';
                break;
              case '\\':
                val += '\\';
                break;
              case '\'':
                val += '\'';
                break;
              case '"':
                val += '"';
                break;
              case '\n':
                break;
              default:
                val += '\\', val += x;
            }
            ++e;
          } else {
            val += s[e++];
          }
        }
        if (e >= s.size()) err(j, "unterminated string literal");
        out.push_back(make(Token::Kind::string, val, j));
        j = e + 1;
      } else {
        static const char* ops[] = {"==", "!=", "<=", ">=", "//", "**", "<", ">", "+",
                                    "-",  "*",  "/",  "%",  "~",  "|",  ".", ",", ":",
                                    "(",  ")",  "[",  "]",  "{",  "}",  "="};
        bool matched = false;
        for (const char* op : ops) {
          size_t len = std::strlen(op);
          if (s.compare(j, len, op) == 0) {
            if (op[0] == '{' && len == 1) ++depth;
            if (op[0] == '}' && len == 1) --depth;
            out.push_back(make(Token::Kind::op, op, j));
            j += len;
            matched = true;
            break;
          }
        }
        if (!matched) err(j, std::string("unexpected character '") + c + "'");
      }
    }
    if (!closed) err(tag, kind == '{' ? "unclosed {{ ... }}" : "unclosed {% ... %}");
    i = j;
  }
  out.push_back(make(Token::Kind::end, "", s.size()));
  return out;
}

}  // namespace tern::tokenizer::jinja
