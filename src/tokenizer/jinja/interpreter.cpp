// Tree-walking interpreter. Errors carry the line and column of the node being evaluated.
#include "tokenizer/jinja/interpreter.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "tokenizer/jinja/builtins.h"

namespace tern::tokenizer::jinja {

namespace {

struct Scope {
  Object vars;
  Scope* parent = nullptr;
  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent)
      for (const auto& [k, v] : s->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};

struct LoopSignal {
  bool is_break;
};

class Interp {
 public:
  explicit Interp(size_t max_output) : max_output_(max_output) {}

  void exec(const Body& body, Scope& scope, std::string& out) {
    for (const auto& s : body) exec(*s, scope, out);
  }

 private:
  size_t max_output_;
  int depth_ = 0;
  uint64_t steps_ = 0;
  static constexpr uint64_t kMaxSteps = 5'000'000;

  [[noreturn]] void error(int line, int col, const std::string& msg) const {
    fail(ErrorKind::request, "chat template line " + std::to_string(line) + ", column " +
                                 std::to_string(col) + ": " + msg);
  }

  void emit(std::string& out, const std::string& s, const Stmt& st) {
    out += s;
    if (out.size() > max_output_)
      error(st.line, st.col, "rendered output exceeds " + std::to_string(max_output_) + " bytes");
  }

  void exec(const Stmt& s, Scope& scope, std::string& out) {
    // A step budget stops templates that loop for ever without printing anything.
    if (++steps_ > kMaxSteps) error(s.line, s.col, "template ran more than 5 million steps");
    switch (s.kind) {
      case Stmt::Kind::text:
        emit(out, s.text, s);
        break;
      case Stmt::Kind::output:
        emit(out, eval(*s.exprs[0], scope).to_string(), s);
        break;
      case Stmt::Kind::if_: {
        for (size_t i = 0; i < s.exprs.size(); ++i)
          if (eval(*s.exprs[i], scope).truthy()) return exec(s.bodies[i], scope, out);
        if (s.has_else) exec(s.bodies.back(), scope, out);
        break;
      }
      case Stmt::Kind::for_:
        exec_for(s, scope, out);
        break;
      case Stmt::Kind::set: {
        Value v = eval(*s.exprs[0], scope);
        if (s.attr.empty()) {
          scope.set(s.text, std::move(v));
        } else {
          const Value* ns = scope.lookup(s.text);
          if (!ns || !ns->is_namespace())
            error(s.line, s.col,
                  "cannot set attribute '" + s.attr + "' of '" + s.text + "': not a namespace");
          ns->set(s.attr, std::move(v));
        }
        break;
      }
      case Stmt::Kind::set_block: {
        std::string captured;
        exec(s.bodies[0], scope, captured);
        scope.set(s.text, Value::from(captured));
        break;
      }
      case Stmt::Kind::macro:
        define_macro(s, scope);
        break;
      case Stmt::Kind::break_:
        throw LoopSignal{true};
      case Stmt::Kind::continue_:
        throw LoopSignal{false};
    }
  }

  void exec_for(const Stmt& s, Scope& scope, std::string& out) {
    Value iterable = eval(*s.exprs[0], scope);
    Array items;
    if (iterable.is_array())
      items = iterable.arr();
    else if (iterable.is_object())
      for (const auto& [k, _] : iterable.obj()) items.push_back(Value::from(k));
    else if (iterable.is_string())
      items = apply_filter("list", iterable, Args{}, [&](const std::string& m) {
                error(s.line, s.col, m);
              }).arr();
    else if (!iterable.is_undefined())
      error(s.line, s.col, std::string("cannot iterate over a ") + iterable.type_name());
    auto bind = [&](Scope& inner, const Value& item) {
      if (s.targets.size() == 1) {
        inner.set(s.targets[0], item);
        return;
      }
      if (!item.is_array() || item.arr().size() != s.targets.size())
        error(s.line, s.col,
              "cannot unpack loop item into " + std::to_string(s.targets.size()) + " names");
      for (size_t k = 0; k < s.targets.size(); ++k) inner.set(s.targets[k], item.arr()[k]);
    };
    if (s.exprs.size() > 1) {  // loop filter: {% for x in xs if cond %}
      Array kept;
      for (const Value& item : items) {
        Scope probe{{}, &scope};
        bind(probe, item);
        if (eval(*s.exprs[1], probe).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (s.has_else) exec(s.bodies[1], scope, out);
      return;
    }
    const int64_t n = int64_t(items.size());
    for (int64_t i = 0; i < n; ++i) {
      if (++steps_ > kMaxSteps) error(s.line, s.col, "template ran more than 5 million steps");
      Scope inner{{}, &scope};
      Value loop = Value::object();
      loop.set("index", Value::from(i + 1));
      loop.set("index0", Value::from(i));
      loop.set("revindex", Value::from(n - i));
      loop.set("revindex0", Value::from(n - i - 1));
      loop.set("first", Value::from(i == 0));
      loop.set("last", Value::from(i == n - 1));
      loop.set("length", Value::from(n));
      loop.set("previtem", i > 0 ? items[size_t(i - 1)] : Value());
      loop.set("nextitem", i + 1 < n ? items[size_t(i + 1)] : Value());
      loop.set("cycle", Value::function([i](const Args& a) {
                 return a.pos.empty() ? Value() : a.pos[size_t(i) % a.pos.size()];
               }));
      inner.set("loop", loop);
      bind(inner, items[size_t(i)]);
      try {
        exec(s.bodies[0], inner, out);
      } catch (const LoopSignal& sig) {
        if (sig.is_break) break;
      }
    }
  }

  void define_macro(const Stmt& s, Scope& scope) {
    Scope* defining = &scope;
    const Stmt* stmt = &s;
    scope.set(s.text, Value::function([this, stmt, defining](const Args& args) {
                Scope inner{{}, defining};
                for (size_t k = 0; k < stmt->targets.size(); ++k) {
                  const Value* v = args.get(k, stmt->targets[k].c_str());
                  if (v)
                    inner.set(stmt->targets[k], *v);
                  else if (stmt->exprs[k])
                    inner.set(stmt->targets[k], eval(*stmt->exprs[k], *defining));
                  else
                    inner.set(stmt->targets[k], Value());
                }
                if (++depth_ > 100) error(stmt->line, stmt->col, "macro recursion too deep");
                std::string out;
                exec(stmt->bodies[0], inner, out);
                --depth_;
                return Value::from(out);
              }));
  }

  Args eval_args(const Expr& e, Scope& scope, size_t skip) {
    Args a;
    for (size_t k = skip; k < e.children.size(); ++k) a.pos.push_back(eval(*e.children[k], scope));
    for (const auto& [name, x] : e.kwargs) a.kw.emplace_back(name, eval(*x, scope));
    return a;
  }

  static int64_t norm_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

  Value eval(const Expr& e, Scope& scope) {
    auto err = [&](const std::string& m) { error(e.line, e.col, m); };
    switch (e.kind) {
      case Expr::Kind::literal:
        return e.literal;
      case Expr::Kind::name: {
        if (const Value* v = scope.lookup(e.name)) return *v;
        return global_function(e.name);
      }
      case Expr::Kind::attr: {
        Value obj = eval(*e.children[0], scope);
        if (obj.is_undefined() || obj.is_none())
          error(e.line, e.col,
                "cannot read attribute '" + e.name + "' of " +
                    (obj.is_none() ? "None" : "an undefined value"));
        if (const Value* v = obj.find(e.name)) return *v;
        return method(obj, e.name);
      }
      case Expr::Kind::index: {
        Value obj = eval(*e.children[0], scope);
        Value key = eval(*e.children[1], scope);
        if (obj.is_undefined() || obj.is_none())
          error(e.line, e.col,
                "cannot index " + std::string(obj.is_none() ? "None" : "an undefined value"));
        if (obj.is_object()) {
          if (!key.is_string()) return Value();
          if (const Value* v = obj.find(key.str())) return *v;
          return method(obj, key.str());
        }
        if (key.type() != Value::Type::integer) {
          if (key.is_string()) return method(obj, key.str());
          error(e.line, e.col, "list indices must be integers");
        }
        if (obj.is_array()) {
          int64_t n = int64_t(obj.arr().size()), i = norm_index(key.integer(), n);
          return i >= 0 && i < n ? obj.arr()[size_t(i)] : Value();
        }
        if (obj.is_string()) {
          Array chars = apply_filter("list", obj, Args{}, err).arr();
          int64_t n = int64_t(chars.size()), i = norm_index(key.integer(), n);
          return i >= 0 && i < n ? chars[size_t(i)] : Value();
        }
        error(e.line, e.col, std::string("cannot index a ") + obj.type_name());
      }
      case Expr::Kind::slice:
        return eval_slice(e, scope);
      case Expr::Kind::call: {
        Value f = eval(*e.children[0], scope);
        if (!f.is_function())
          error(e.line, e.col,
                "called value is not a function (" + std::string(f.type_name()) + ")");
        return f.fn()(eval_args(e, scope, 1));
      }
      case Expr::Kind::filter: {
        Value v = eval(*e.children[0], scope);
        return apply_filter(e.name, v, eval_args(e, scope, 1), err);
      }
      case Expr::Kind::test: {
        Value v = eval(*e.children[0], scope);
        return Value::from(apply_test(e.name, v, eval_args(e, scope, 1), err) != e.negated);
      }
      case Expr::Kind::unary: {
        Value v = eval(*e.children[0], scope);
        if (e.name == "not") return Value::from(!v.truthy());
        if (!v.is_number()) error(e.line, e.col, "bad operand for unary " + e.name);
        if (e.name == "+") return v;
        return v.type() == Value::Type::integer ? Value::from(-v.integer())
                                                : Value::from(-v.number());
      }
      case Expr::Kind::binary:
        return eval_binary(e, scope);
      case Expr::Kind::ternary: {
        if (eval(*e.children[0], scope).truthy()) return eval(*e.children[1], scope);
        return e.children.size() > 2 ? eval(*e.children[2], scope) : Value();
      }
      case Expr::Kind::list: {
        Array a;
        for (const auto& c : e.children) a.push_back(eval(*c, scope));
        return Value::array(std::move(a));
      }
      case Expr::Kind::dict: {
        Value d = Value::object();
        for (size_t k = 0; k + 1 < e.children.size(); k += 2) {
          Value key = eval(*e.children[k], scope);
          if (!key.is_string()) error(e.line, e.col, "dict keys must be strings");
          d.set(key.str(), eval(*e.children[k + 1], scope));
        }
        return d;
      }
    }
    error(e.line, e.col, "internal: unknown expression");
  }

  Value eval_slice(const Expr& e, Scope& scope) {
    Value obj = eval(*e.children[0], scope);
    auto err = [&](const std::string& m) { error(e.line, e.col, m); };
    Array items =
        obj.is_string() ? apply_filter("list", obj, Args{}, err).arr()
        : obj.is_array()
            ? obj.arr()
            : (error(e.line, e.col, std::string("cannot slice a ") + obj.type_name()), Array{});
    int64_t n = int64_t(items.size());
    auto part = [&](size_t k) -> std::optional<int64_t> {
      if (!e.children[k]) return std::nullopt;
      Value v = eval(*e.children[k], scope);
      if (v.is_none()) return std::nullopt;
      if (v.type() != Value::Type::integer) error(e.line, e.col, "slice indices must be integers");
      return v.integer();
    };
    auto a = part(1), b = part(2), c = part(3);
    int64_t step = c.value_or(1);
    if (step == 0) error(e.line, e.col, "slice step cannot be zero");
    // Python's slice.indices().
    auto clamp = [&](std::optional<int64_t> x, int64_t dflt) {
      if (!x) return dflt;
      int64_t v = *x < 0 ? *x + n : *x;
      if (step > 0) return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    int64_t start = clamp(a, step > 0 ? 0 : n - 1), stop = clamp(b, step > 0 ? n : -1);
    Array out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
      out.push_back(items[size_t(i)]);
    if (obj.is_string()) {
      std::string s;
      for (const Value& ch : out) s += ch.str();
      return Value::from(s);
    }
    return Value::array(std::move(out));
  }

  Value eval_binary(const Expr& e, Scope& scope) {
    const std::string& op = e.name;
    Value l = eval(*e.children[0], scope);
    if (op == "and") return l.truthy() ? eval(*e.children[1], scope) : l;
    if (op == "or") return l.truthy() ? l : eval(*e.children[1], scope);
    Value r = eval(*e.children[1], scope);
    if (op == "==") return Value::from(l.equals(r));
    if (op == "!=") return Value::from(!l.equals(r));
    if (op == "~") return Value::from(l.to_string() + r.to_string());
    if (op == "in" || op == "not in") {
      bool found = false;
      if (r.is_string()) {
        if (!l.is_string()) error(e.line, e.col, "'in <string>' requires a string on the left");
        found = r.str().find(l.str()) != std::string::npos;
      } else if (r.is_array()) {
        for (const Value& x : r.arr()) found = found || x.equals(l);
      } else if (r.is_object()) {
        found = l.is_string() && r.find(l.str()) != nullptr;
      } else if (!r.is_undefined()) {
        error(e.line, e.col, std::string("argument of type ") + r.type_name() + " is not iterable");
      }
      return Value::from(found == (op == "in"));
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (l.is_number() && r.is_number())
        c = l.number() < r.number() ? -1 : l.number() > r.number() ? 1 : 0;
      else if (l.is_string() && r.is_string())
        c = l.str().compare(r.str());
      else
        error(e.line, e.col,
              std::string("cannot compare ") + l.type_name() + " and " + r.type_name());
      return Value::from(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (op == "+") {
      if (l.is_string() && r.is_string()) return Value::from(l.str() + r.str());
      if (l.is_array() && r.is_array()) {
        Array a = l.arr();
        a.insert(a.end(), r.arr().begin(), r.arr().end());
        return Value::array(std::move(a));
      }
    }
    if (op == "*" && ((l.is_string() && r.type() == Value::Type::integer) ||
                      (r.is_string() && l.type() == Value::Type::integer))) {
      const Value& s = l.is_string() ? l : r;
      int64_t k = l.is_string() ? r.integer() : l.integer();
      if (k * int64_t(s.str().size()) > int64_t(max_output_))
        error(e.line, e.col, "string repetition too large");
      std::string out;
      for (int64_t i = 0; i < k; ++i) out += s.str();
      return Value::from(out);
    }
    if (!l.is_number() || !r.is_number())
      error(e.line, e.col,
            "unsupported operand types for " + op + ": " + l.type_name() + " and " + r.type_name());
    bool ints = l.type() == Value::Type::integer && r.type() == Value::Type::integer;
    if (op == "+")
      return ints ? Value::from(l.integer() + r.integer()) : Value::from(l.number() + r.number());
    if (op == "-")
      return ints ? Value::from(l.integer() - r.integer()) : Value::from(l.number() - r.number());
    if (op == "*")
      return ints ? Value::from(l.integer() * r.integer()) : Value::from(l.number() * r.number());
    if (op == "/") {
      if (r.number() == 0) error(e.line, e.col, "division by zero");
      return Value::from(l.number() / r.number());
    }
    if (op == "//" || op == "%") {
      if (r.number() == 0) error(e.line, e.col, "division by zero");
      if (ints) {
        int64_t q = l.integer() / r.integer(), m = l.integer() % r.integer();
        if (m != 0 && ((m < 0) != (r.integer() < 0))) --q, m += r.integer();  // Python floors
        return Value::from(op == "//" ? q : m);
      }
      double q = std::floor(l.number() / r.number());
      return Value::from(op == "//" ? q : l.number() - q * r.number());
    }
    if (op == "**") {
      if (ints && r.integer() >= 0) {
        int64_t out = 1;
        for (int64_t i = 0; i < r.integer() && i < 64; ++i) out *= l.integer();
        return Value::from(out);
      }
      return Value::from(std::pow(l.number(), r.number()));
    }
    error(e.line, e.col, "unknown operator " + op);
  }
};

}  // namespace

std::string render(const Body& body, const Value& globals, size_t max_output) {
  Scope root;
  if (globals.is_object()) root.vars = globals.obj();
  Scope top{{}, &root};
  std::string out;
  Interp interp(max_output);
  try {
    interp.exec(body, top, out);
  } catch (const LoopSignal&) {
    fail(ErrorKind::request, "chat template: {% break %} or {% continue %} outside a loop");
  }
  return out;
}

}  // namespace tern::tokenizer::jinja
