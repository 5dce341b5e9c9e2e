// Runtime values of the Jinja subset used by chat templates: undefined, none, bool, int, float,
// string, list, dict (insertion-ordered, as Python dicts are), namespace and callables.
// Owns value semantics (truthiness, equality, printing, JSON conversion); does not own parsing
// (parser.h) or evaluation (interpreter.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tern::tokenizer::jinja {

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;

// Call arguments: positional values and keyword values (in call order).
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* get(size_t i, const char* name) const;  // positional i, else keyword `name`
};
using Function = std::function<Value(const Args&)>;

class Value {
 public:
  enum class Type { undefined, none, boolean, integer, floating, string, array, object, function };

  Value() = default;
  static Value none();
  static Value from(bool b);
  static Value from(int64_t i);
  static Value from(double f);
  static Value from(std::string s);
  static Value array(Array a = {});
  static Value object(Object o = {}, bool is_namespace = false);
  static Value function(Function f);
  static Value from_json(const nlohmann::ordered_json& j);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::undefined; }
  bool is_none() const { return type_ == Type::none; }
  bool is_string() const { return type_ == Type::string; }
  bool is_number() const { return type_ == Type::integer || type_ == Type::floating; }
  bool is_array() const { return type_ == Type::array; }
  bool is_object() const { return type_ == Type::object; }
  bool is_namespace() const { return type_ == Type::object && namespace_; }
  bool is_function() const { return type_ == Type::function; }

  bool boolean() const { return b_; }
  int64_t integer() const { return i_; }
  double number() const { return type_ == Type::integer ? double(i_) : f_; }
  const std::string& str() const { return *s_; }
  Array& arr() const { return *a_; }
  Object& obj() const { return *o_; }
  const Function& fn() const { return *fn_; }

  // Dict lookup (nullptr if absent); set inserts or replaces, keeping insertion order.
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v) const;

  bool truthy() const;
  bool equals(const Value& o) const;
  // Text as {{ value }} prints it (Python str(): None, True, 1.0, ['a'], {'k': 1}).
  std::string to_string() const;
  // JSON text as the tojson filter writes it (indent < 0: one line with ", " and ": ").
  std::string to_json(int indent = -1, bool sort_keys = false, int depth = 0) const;
  const char* type_name() const;

 private:
  Type type_ = Type::undefined;
  bool b_ = false;
  bool namespace_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<std::string> s_;
  std::shared_ptr<Array> a_;
  std::shared_ptr<Object> o_;
  std::shared_ptr<Function> fn_;
};

}  // namespace tern::tokenizer::jinja
