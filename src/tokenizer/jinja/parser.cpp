// Recursive-descent parser. Expression precedence, loosest first: ternary, or, and, not,
// comparison (==, !=, <, >, <=, >=, in, not in), ~, + -, * / // %, **, unary - +, then postfix
// (.attr, [index/slice], call) followed by filters (|) and tests (is) — as in Jinja2.
#include "tokenizer/jinja/parser.h"

#include "core/error.h"

namespace tern::tokenizer::jinja {

namespace {

class Parser {
 public:
  explicit Parser(const std::string& source) : toks_(lex(source)) {}

  Body parse_all() {
    Body body = parse_body({});
    if (peek().kind != Token::Kind::end) error(peek(), "unexpected '" + stop_word_ + "'");
    return body;
  }

 private:
  std::vector<Token> toks_;
  size_t p_ = 0;
  std::string stop_word_;
  int depth_ = 0;
  static constexpr int kMaxDepth = 200;
  // Bounded nesting: a hostile template must not overflow the stack.
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& x) : p(x) {
      if (++p.depth_ > kMaxDepth) p.error(p.peek(), "template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& peek(size_t k = 0) const { return toks_[std::min(p_ + k, toks_.size() - 1)]; }
  const Token& next() { return toks_[std::min(p_++, toks_.size() - 1)]; }
  [[noreturn]] void error(const Token& t, const std::string& msg) const {
    fail(ErrorKind::format, "chat template line " + std::to_string(t.line) + ", column " +
                                std::to_string(t.col) + ": " + msg);
  }
  bool is_op(const char* op, size_t k = 0) const {
    return peek(k).kind == Token::Kind::op && peek(k).text == op;
  }
  bool is_name(const char* n, size_t k = 0) const {
    return peek(k).kind == Token::Kind::name && peek(k).text == n;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) error(peek(), std::string("expected '") + op + "'");
    next();
  }
  std::string expect_name() {
    if (peek().kind != Token::Kind::name) error(peek(), "expected a name");
    return next().text;
  }
  static StmtPtr make_stmt(Stmt::Kind k, const Token& t) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = t.line;
    s->col = t.col;
    return s;
  }
  void expect_block_close() {
    if (peek().kind != Token::Kind::block_close) error(peek(), "expected '%}'");
    next();
  }

  // Parses statements until a block tag whose first word is in `stops` (left unconsumed).
  Body parse_body(const std::vector<std::string>& stops) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == Token::Kind::end) {
        if (!stops.empty()) error(t, "missing {% " + stops.back() + " %}");
        return body;
      }
      if (t.kind == Token::Kind::text) {
        auto s = make_stmt(Stmt::Kind::text, t);
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.kind == Token::Kind::var_open) {
        next();
        auto s = make_stmt(Stmt::Kind::output, t);
        s->exprs.push_back(parse_expr());
        if (peek().kind != Token::Kind::var_close) error(peek(), "expected '}}'");
        next();
        body.push_back(std::move(s));
      } else if (t.kind == Token::Kind::block_open) {
        const Token& word = peek(1);
        if (word.kind != Token::Kind::name) error(word, "expected a statement name");
        for (const auto& stop : stops)
          if (word.text == stop) {
            stop_word_ = word.text;
            return body;
          }
        next();
        body.push_back(parse_statement());
      } else {
        error(t, "unexpected token");
      }
    }
  }

  void consume_tag(const char* word) {
    next();  // {%
    if (expect_name() != word) error(peek(), std::string("expected ") + word);
  }

  StmtPtr parse_statement() {
    const Token& w = next();
    auto s = make_stmt(Stmt::Kind::text, w);
    if (w.text == "if") {
      s->kind = Stmt::Kind::if_;
      s->exprs.push_back(parse_expr());
      expect_block_close();
      while (true) {
        s->bodies.push_back(parse_body({"elif", "else", "endif"}));
        next();  // {%
        std::string word = next().text;
        if (word == "elif") {
          s->exprs.push_back(parse_expr());
          expect_block_close();
        } else if (word == "else") {
          expect_block_close();
          s->bodies.push_back(parse_body({"endif"}));
          s->has_else = true;
          consume_tag("endif");
          expect_block_close();
          break;
        } else {
          expect_block_close();
          break;
        }
      }
    } else if (w.text == "for") {
      s->kind = Stmt::Kind::for_;
      s->targets.push_back(expect_name());
      while (is_op(",")) {
        next();
        s->targets.push_back(expect_name());
      }
      if (!is_name("in")) error(peek(), "expected 'in'");
      next();
      s->exprs.push_back(parse_or());  // no ternary here: "if" starts the loop filter
      if (is_name("if")) {
        next();
        s->exprs.push_back(parse_expr());
      }
      if (is_name("recursive")) error(peek(), "recursive loops are not supported");
      expect_block_close();
      s->bodies.push_back(parse_body({"else", "endfor"}));
      next();
      if (next().text == "else") {
        expect_block_close();
        s->bodies.push_back(parse_body({"endfor"}));
        s->has_else = true;
        consume_tag("endfor");
      }
      expect_block_close();
    } else if (w.text == "set") {
      s->kind = Stmt::Kind::set;
      s->text = expect_name();
      if (is_op(".")) {
        next();
        s->attr = expect_name();
      }
      if (is_op(",")) error(peek(), "tuple assignment in set is not supported");
      if (peek().kind == Token::Kind::block_close) {
        next();
        s->kind = Stmt::Kind::set_block;
        s->bodies.push_back(parse_body({"endset"}));
        consume_tag("endset");
        expect_block_close();
      } else {
        expect_op("=");
        s->exprs.push_back(parse_expr());
        expect_block_close();
      }
    } else if (w.text == "macro") {
      s->kind = Stmt::Kind::macro;
      s->text = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        s->targets.push_back(expect_name());
        if (is_op("=")) {
          next();
          s->exprs.push_back(parse_expr());
        } else {
          s->exprs.push_back(nullptr);
        }
        if (!is_op(")")) expect_op(",");
      }
      next();
      expect_block_close();
      s->bodies.push_back(parse_body({"endmacro"}));
      consume_tag("endmacro");
      expect_block_close();
    } else if (w.text == "break" || w.text == "continue") {
      s->kind = w.text == "break" ? Stmt::Kind::break_ : Stmt::Kind::continue_;
      expect_block_close();
    } else {
      error(w, "unknown statement '" + w.text + "'");
    }
    return s;
  }

  ExprPtr node(Expr::Kind k, const Token& t) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = t.line;
    e->col = t.col;
    return e;
  }
  ExprPtr binary(const Token& t, std::string op, ExprPtr l, ExprPtr r) {
    auto e = node(Expr::Kind::binary, t);
    e->name = std::move(op);
    e->children.push_back(std::move(l));
    e->children.push_back(std::move(r));
    return e;
  }

 public:
  ExprPtr parse_expr() {
    const Token& t = peek();
    DepthGuard guard(*this);
    ExprPtr e = parse_or();
    if (is_name("if")) {
      next();
      auto tern = node(Expr::Kind::ternary, t);
      tern->children.push_back(parse_or());  // condition
      tern->children.push_back(std::move(e));
      if (is_name("else")) {
        next();
        tern->children.push_back(parse_expr());
      }
      return tern;
    }
    return e;
  }

 private:
  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const Token& t = next();
      e = binary(t, "or", std::move(e), parse_and());
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const Token& t = next();
      e = binary(t, "and", std::move(e), parse_not());
    }
    return e;
  }
  ExprPtr parse_not() {
    DepthGuard guard(*this);
    if (is_name("not")) {
      const Token& t = next();
      auto e = node(Expr::Kind::unary, t);
      e->name = "not";
      e->children.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_concat();
    while (true) {
      const Token& t = peek();
      std::string op;
      if (t.kind == Token::Kind::op && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                        t.text == ">" || t.text == "<=" || t.text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        return e;
      }
      e = binary(t, op, std::move(e), parse_concat());
    }
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_additive();
    while (is_op("~")) {
      const Token& t = next();
      e = binary(t, "~", std::move(e), parse_additive());
    }
    return e;
  }
  ExprPtr parse_additive() {
    ExprPtr e = parse_multiplicative();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(t, t.text, std::move(e), parse_multiplicative());
    }
    return e;
  }
  ExprPtr parse_multiplicative() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      e = binary(t, t.text, std::move(e), parse_pow());
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary();
    while (is_op("**")) {
      const Token& t = next();
      e = binary(t, "**", std::move(e), parse_unary());
    }
    return e;
  }
  ExprPtr parse_unary() {
    DepthGuard guard(*this);
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      auto e = node(Expr::Kind::unary, t);
      e->name = t.text;
      e->children.push_back(parse_unary());
      return e;
    }
    return parse_filters(parse_postfix(parse_primary()));
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == Token::Kind::name && is_op("=", 1)) {
        std::string k = next().text;
        next();
        e.kwargs.emplace_back(k, parse_expr());
      } else {
        e.children.push_back(parse_expr());
      }
      if (!is_op(")")) expect_op(",");
    }
    next();
  }

  ExprPtr parse_filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        const Token& t = next();
        auto f = node(Expr::Kind::filter, t);
        f->name = expect_name();
        f->children.push_back(std::move(e));
        if (is_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        const Token& t = next();
        auto f = node(Expr::Kind::test, t);
        if (is_name("not")) {
          next();
          f->negated = true;
        }
        // "none", "true" and "false" are tests and also literal names.
        f->name = expect_name();
        f->children.push_back(std::move(e));
        if (is_op("("))
          parse_call_args(*f);
        else if (peek().kind == Token::Kind::integer || peek().kind == Token::Kind::string)
          f->children.push_back(parse_primary());
        e = std::move(f);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const Token& t = peek();
      if (is_op(".")) {
        next();
        auto a = node(Expr::Kind::attr, t);
        a->name = expect_name();
        a->children.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        next();
        ExprPtr parts[3];
        int colons = 0;
        while (!is_op("]")) {
          if (is_op(":")) {
            next();
            if (++colons > 2) error(peek(), "too many ':' in slice");
          } else {
            if (parts[colons]) error(peek(), "expected ']'");
            parts[colons] = parse_expr();
          }
        }
        next();
        auto ix = node(colons ? Expr::Kind::slice : Expr::Kind::index, t);
        ix->children.push_back(std::move(e));
        if (colons) {
          for (auto& p : parts) ix->children.push_back(std::move(p));
        } else {
          if (!parts[0]) error(t, "empty subscript");
          ix->children.push_back(std::move(parts[0]));
        }
        e = std::move(ix);
      } else if (is_op("(")) {
        auto c = node(Expr::Kind::call, t);
        c->children.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_primary() {
    const Token& t = next();
    switch (t.kind) {
      case Token::Kind::string: {
        auto e = node(Expr::Kind::literal, t);
        std::string s = t.text;
        while (peek().kind == Token::Kind::string) s += next().text;  // adjacent literals join
        e->literal = Value::from(std::move(s));
        return e;
      }
      case Token::Kind::integer: {
        auto e = node(Expr::Kind::literal, t);
        e->literal = Value::from(t.ival);
        return e;
      }
      case Token::Kind::floating: {
        auto e = node(Expr::Kind::literal, t);
        e->literal = Value::from(t.fval);
        return e;
      }
      case Token::Kind::name: {
        auto e = node(Expr::Kind::literal, t);
        if (t.text == "true" || t.text == "True")
          e->literal = Value::from(true);
        else if (t.text == "false" || t.text == "False")
          e->literal = Value::from(false);
        else if (t.text == "none" || t.text == "None")
          e->literal = Value::none();
        else {
          e->kind = Expr::Kind::name;
          e->name = t.text;
        }
        return e;
      }
      case Token::Kind::op:
        if (t.text == "(") {
          ExprPtr first = parse_expr();
          if (is_op(")")) {
            next();
            return first;
          }
          auto list = node(Expr::Kind::list, t);  // a tuple behaves as a list here
          list->children.push_back(std::move(first));
          while (is_op(",")) {
            next();
            if (is_op(")")) break;
            list->children.push_back(parse_expr());
          }
          expect_op(")");
          return list;
        }
        if (t.text == "[") {
          auto list = node(Expr::Kind::list, t);
          while (!is_op("]")) {
            list->children.push_back(parse_expr());
            if (!is_op("]")) expect_op(",");
          }
          next();
          return list;
        }
        if (t.text == "{") {
          auto dict = node(Expr::Kind::dict, t);
          while (!is_op("}")) {
            dict->children.push_back(parse_expr());
            expect_op(":");
            dict->children.push_back(parse_expr());
            if (!is_op("}")) expect_op(",");
          }
          next();
          return dict;
        }
        break;
      default:
        break;
    }
    error(t, t.kind == Token::Kind::end ? "unexpected end of template"
                                        : "unexpected '" + t.text + "'");
  }
};

}  // namespace

Body parse(const std::string& source) {
  return Parser(source).parse_all();
}

}  // namespace tern::tokenizer::jinja
