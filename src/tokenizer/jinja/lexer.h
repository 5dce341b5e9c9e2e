// Jinja lexer for chat templates: applies the environment transformers uses (trim_blocks,
// lstrip_blocks, no trailing newline, {% generation %} markers dropped), then splits the text into
// raw text and tag tokens, honouring the "-" whitespace-control markers. Positions refer to the
// original template so errors can name its line and column.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::tokenizer::jinja {

struct Token {
  enum class Kind {
    text,
    var_open,
    var_close,
    block_open,
    block_close,
    name,
    string,
    integer,
    floating,
    op,
    end
  };
  Kind kind;
  std::string text;  // text, name, op or decoded string literal
  int64_t ival = 0;
  double fval = 0;
  int line = 1, col = 1;
};

// Throws tern::Error ("chat template line L, column C: ...") on malformed input.
std::vector<Token> lex(const std::string& source);

// "line L, column C" of a byte offset in `source`.
std::string position(const std::string& source, size_t offset);

}  // namespace tern::tokenizer::jinja
