// Value semantics follow Python/Jinja2 (what transformers renders) wherever the reference
// JavaScript renderer agrees with it; JSON output matches json.dumps(ensure_ascii=False).
#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tern::tokenizer::jinja {

const Value* Args::get(size_t i, const char* name) const {
  if (i < pos.size()) return &pos[i];
  if (name)
    for (const auto& [k, v] : kw)
      if (k == name) return &v;
  return nullptr;
}

Value Value::none() {
  Value v;
  v.type_ = Type::none;
  return v;
}
Value Value::from(bool b) {
  Value v;
  v.type_ = Type::boolean;
  v.b_ = b;
  return v;
}
Value Value::from(int64_t i) {
  Value v;
  v.type_ = Type::integer;
  v.i_ = i;
  return v;
}
Value Value::from(double f) {
  Value v;
  v.type_ = Type::floating;
  v.f_ = f;
  return v;
}
Value Value::from(std::string s) {
  Value v;
  v.type_ = Type::string;
  v.s_ = std::make_shared<std::string>(std::move(s));
  return v;
}
Value Value::array(Array a) {
  Value v;
  v.type_ = Type::array;
  v.a_ = std::make_shared<Array>(std::move(a));
  return v;
}
Value Value::object(Object o, bool is_namespace) {
  Value v;
  v.type_ = Type::object;
  v.namespace_ = is_namespace;
  v.o_ = std::make_shared<Object>(std::move(o));
  return v;
}
Value Value::function(Function f) {
  Value v;
  v.type_ = Type::function;
  v.fn_ = std::make_shared<Function>(std::move(f));
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return from(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
      return from(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return from(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return from(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      for (const auto& e : j) a.push_back(from_json(e));
      return array(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      for (auto it = j.begin(); it != j.end(); ++it)
        o.emplace_back(it.key(), from_json(it.value()));
      return object(std::move(o));
    }
    default:
      return Value();
  }
}

const Value* Value::find(const std::string& key) const {
  if (type_ != Type::object) return nullptr;
  for (const auto& [k, v] : *o_)
    if (k == key) return &v;
  return nullptr;
}

void Value::set(const std::string& key, Value v) const {
  for (auto& [k, old] : *o_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  o_->emplace_back(key, std::move(v));
}

bool Value::truthy() const {
  switch (type_) {
    case Type::undefined:
    case Type::none:
      return false;
    case Type::boolean:
      return b_;
    case Type::integer:
      return i_ != 0;
    case Type::floating:
      return f_ != 0;
    case Type::string:
      return !s_->empty();
    case Type::array:
      return !a_->empty();
    case Type::object:
      return !o_->empty();
    case Type::function:
      return true;
  }
  return false;
}

bool Value::equals(const Value& o) const {
  if (is_number() && o.is_number()) return number() == o.number();
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::undefined:
    case Type::none:
      return true;
    case Type::boolean:
      return b_ == o.b_;
    case Type::string:
      return *s_ == *o.s_;
    case Type::array:
      return a_->size() == o.a_->size() &&
             std::equal(a_->begin(), a_->end(), o.a_->begin(),
                        [](const Value& x, const Value& y) { return x.equals(y); });
    case Type::object:
      if (o_->size() != o.o_->size()) return false;
      for (const auto& [k, v] : *o_) {
        const Value* w = o.find(k);
        if (!w || !v.equals(*w)) return false;
      }
      return true;
    default:
      return fn_ == o.fn_;
  }
}

namespace {

std::string format_float(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == std::floor(f) && std::fabs(f) < 1e16) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", f);
    return buf;
  }
  // Shortest representation that round-trips, like Python's repr.
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  return buf;
}

std::string py_repr_string(const std::string& s) {
  // Python picks single quotes unless the string contains one and no double quote.
  bool has_single = s.find('\'') != std::string::npos,
       has_double = s.find('"') != std::string::npos;
  char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == q || c == '\\')
      out += '\\', out += c;
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else
      out += c;
  }
  return out + q;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

std::string repr(const Value& v) {
  return v.is_string() ? py_repr_string(v.str()) : v.to_string();
}

}  // namespace

std::string Value::to_string() const {
  switch (type_) {
    case Type::undefined:
      return "";
    case Type::none:
      return "None";
    case Type::boolean:
      return b_ ? "True" : "False";
    case Type::integer:
      return std::to_string(i_);
    case Type::floating:
      return format_float(f_);
    case Type::string:
      return *s_;
    case Type::array: {
      std::string out = "[";
      for (size_t i = 0; i < a_->size(); ++i) out += (i ? ", " : "") + repr((*a_)[i]);
      return out + "]";
    }
    case Type::object: {
      std::string out = "{";
      for (size_t i = 0; i < o_->size(); ++i)
        out += (i ? ", " : "") + py_repr_string((*o_)[i].first) + ": " + repr((*o_)[i].second);
      return out + "}";
    }
    case Type::function:
      return "<function>";
  }
  return "";
}

std::string Value::to_json(int indent, bool sort_keys, int depth) const {
  switch (type_) {
    case Type::undefined:
    case Type::none:
      return "null";
    case Type::boolean:
      return b_ ? "true" : "false";
    case Type::integer:
      return std::to_string(i_);
    case Type::floating:
      return format_float(f_);
    case Type::string:
      return json_string(*s_);
    case Type::function:
      return "null";
    case Type::array:
    case Type::object:
      break;
  }
  std::string item_sep = indent >= 0 ? "," : ", ";
  std::string base;
  if (indent >= 0) base.append(1, '\n').append(size_t(indent * depth), ' ');
  std::string child = indent >= 0 ? base + std::string(size_t(indent), ' ') : "";
  std::vector<std::string> parts;
  if (type_ == Type::array) {
    for (const auto& e : *a_) parts.push_back(e.to_json(indent, sort_keys, depth + 1));
  } else {
    std::vector<const std::pair<std::string, Value>*> entries;
    for (const auto& e : *o_) entries.push_back(&e);
    if (sort_keys)
      std::stable_sort(entries.begin(), entries.end(),
                       [](auto* a, auto* b) { return a->first < b->first; });
    for (auto* e : entries)
      parts.push_back(json_string(e->first) + ": " +
                      e->second.to_json(indent, sort_keys, depth + 1));
  }
  char open = type_ == Type::array ? '[' : '{', close = type_ == Type::array ? ']' : '}';
  std::string out(1, open);
  if (parts.empty()) return out + close;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? item_sep : "") + child + parts[i];
  return out + base + close;
}

const char* Value::type_name() const {
  switch (type_) {
    case Type::undefined:
      return "undefined";
    case Type::none:
      return "none";
    case Type::boolean:
      return "boolean";
    case Type::integer:
      return "integer";
    case Type::floating:
      return "float";
    case Type::string:
      return "string";
    case Type::array:
      return "list";
    case Type::object:
      return "dict";
    case Type::function:
      return "function";
  }
  return "?";
}

}  // namespace tern::tokenizer::jinja
