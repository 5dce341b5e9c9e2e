// Jinja AST and parser for the chat-template subset: statements if/elif/else, for (with loop
// filter, else, tuple targets), set (names, namespace attributes, blocks), macro, break/continue,
// and expressions with Jinja's precedence (filters and tests bind tighter than arithmetic).
// Anything outside the subset is an error naming the template line and column.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/value.h"

namespace tern::tokenizer::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,
    name,
    attr,
    index,
    slice,
    call,
    filter,
    test,
    unary,
    binary,
    ternary,
    list,
    dict
  };
  Kind kind = Kind::literal;
  int line = 0, col = 0;
  Value literal;
  std::string name;               // name / attribute / filter / test / operator
  std::vector<ExprPtr> children;  // operands, call args, list items, dict key/value pairs
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;  // "is not"
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind { text, output, if_, for_, set, set_block, macro, break_, continue_ };
  Kind kind = Kind::text;
  int line = 0, col = 0;
  std::string text;                  // text; set target name; macro name
  std::string attr;                  // set ns.attr
  std::vector<std::string> targets;  // for targets; macro parameter names
  std::vector<ExprPtr>
      exprs;  // output / set value / if conditions / for iterable+filter / macro defaults
  std::vector<Body> bodies;  // if branches (+ else); for body (+ else); set block; macro body
  bool has_else = false;
};

// Parses a template. Throws tern::Error with the line and column of the offending token.
Body parse(const std::string& source);

}  // namespace tern::tokenizer::jinja
