// Filters, tests and methods. Only what Hugging Face chat templates use is here; an unknown
// filter or test is an error that names it rather than a silent empty string.
#include "tokenizer/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <unicode/unistr.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer::jinja {

namespace {

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0xFFFD;
    int n = utf8_decode(s, i, &cp);
    out.push_back(cp);
    i += n > 0 ? size_t(n) : 1;
  }
  return out;
}

std::string from_code_points(const std::vector<uint32_t>& cps, size_t b, size_t e) {
  std::string out;
  for (size_t i = b; i < e; ++i) utf8_append(out, cps[i]);
  return out;
}

std::string icu_case(const std::string& s, bool upper) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  if (upper)
    u.toUpper();
  else
    u.toLower();
  std::string out;
  u.toUTF8String(out);
  return out;
}

std::string title_case(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t cp : code_points(s)) {
    std::string ch;
    utf8_append(ch, cp);
    bool alpha = is_word_char(cp) && cp != '_' && !(cp >= '0' && cp <= '9');
    out += alpha ? icu_case(ch, !prev_cased) : ch;
    prev_cased = alpha;
  }
  return out;
}

std::vector<std::string> py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (!sep || sep->is_none() || sep->is_undefined()) {
    auto cps = code_points(s);
    size_t i = 0, n = cps.size();
    while (true) {
      while (i < n && is_unicode_whitespace(cps[i])) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
        size_t e = n;
        while (e > i && is_unicode_whitespace(cps[e - 1])) --e;
        out.push_back(from_code_points(cps, i, e));
        break;
      }
      size_t j = i;
      while (j < n && !is_unicode_whitespace(cps[j])) ++j;
      out.push_back(from_code_points(cps, i, j));
      i = j;
    }
    return out;
  }
  const std::string& d = sep->str();
  if (d.empty()) fail(ErrorKind::request, "chat template: split(): empty separator");
  size_t start = 0;
  while (true) {
    size_t k = s.find(d, start);
    if (k == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) >= maxsplit)) break;
    out.push_back(s.substr(start, k - start));
    start = k + d.size();
  }
  out.push_back(s.substr(start));
  return out;
}

std::string py_replace(const std::string& s, const std::string& a, const std::string& b,
                       int64_t count) {
  if (a.empty()) {
    // Python inserts `b` between every character (and at both ends).
    std::string out;
    auto cps = code_points(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) out += b, ++done;
      if (i < cps.size()) utf8_append(out, cps[i]);
    }
    return out;
  }
  std::string out;
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t k = s.find(a, start);
    if (k == std::string::npos) break;
    out += s.substr(start, k - start) + b;
    start = k + a.size();
    ++done;
  }
  return out + s.substr(start);
}

Value strings_to_array(const std::vector<std::string>& parts) {
  Array a;
  for (const auto& p : parts) a.push_back(Value::from(p));
  return Value::array(std::move(a));
}

Array as_list(const Value& v, const ErrorFn& err) {
  if (v.is_array()) return v.arr();
  if (v.is_object()) {
    Array a;
    for (const auto& [k, _] : v.obj()) a.push_back(Value::from(k));
    return a;
  }
  if (v.is_string()) {
    Array a;
    for (uint32_t cp : code_points(v.str())) {
      std::string ch;
      utf8_append(ch, cp);
      a.push_back(Value::from(ch));
    }
    return a;
  }
  if (v.is_undefined()) return {};
  err(std::string("cannot iterate over a ") + v.type_name());
  return {};
}

int64_t length_of(const Value& v, const ErrorFn& err) {
  if (v.is_string()) return int64_t(code_points(v.str()).size());
  if (v.is_array()) return int64_t(v.arr().size());
  if (v.is_object()) return int64_t(v.obj().size());
  if (v.is_undefined()) return 0;
  err(std::string("object of type ") + v.type_name() + " has no length");
  return 0;
}

bool less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.number() < b.number();
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  return false;
}

Value attribute_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string key =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const Value* next = cur.find(key);
    cur = next ? *next : Value();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

}  // namespace

std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  auto cps = code_points(s);
  std::vector<uint32_t> set;
  bool ws = !chars || chars->is_none() || chars->is_undefined();
  if (!ws) set = code_points(chars->str());
  auto strip_it = [&](uint32_t cp) {
    return ws ? is_unicode_whitespace(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return from_code_points(cps, b, e);
}

Value apply_filter(const std::string& name, const Value& v, const Args& args, const ErrorFn& err) {
  auto need_string = [&]() -> const std::string& {
    if (!v.is_string()) err("filter '" + name + "' expects a string, got " + v.type_name());
    return v.str();
  };
  if (name == "trim") return Value::from(py_strip(need_string(), args.get(0, "chars"), true, true));
  if (name == "tojson") {
    const Value* indent = args.get(0, "indent");
    const Value* sort = args.get(99, "sort_keys");
    return Value::from(v.to_json(indent && indent->is_number() ? int(indent->integer()) : -1,
                                 sort && sort->truthy()));
  }
  if (name == "length" || name == "count") return Value::from(length_of(v, err));
  if (name == "list") return Value::array(as_list(v, err));
  if (name == "string") return Value::from(v.to_string());
  if (name == "safe" || name == "e" || name == "escape") return v;
  if (name == "lower" || name == "upper")
    return Value::from(icu_case(need_string(), name == "upper"));
  if (name == "title") return Value::from(title_case(need_string()));
  if (name == "capitalize") {
    auto cps = code_points(need_string());
    if (cps.empty()) return v;
    return Value::from(icu_case(from_code_points(cps, 0, 1), true) +
                       icu_case(from_code_points(cps, 1, cps.size()), false));
  }
  if (name == "replace") {
    const Value *a = args.get(0, "old"), *b = args.get(1, "new"), *c = args.get(2, "count");
    if (!a || !b || !a->is_string() || !b->is_string()) err("replace() needs two string arguments");
    return Value::from(
        py_replace(need_string(), a->str(), b->str(), c && c->is_number() ? c->integer() : -1));
  }
  if (name == "join") {
    const Value* sep = args.get(0, "d");
    const Value* attr = args.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& e : as_list(v, err)) {
      out += (first ? "" : (sep ? sep->to_string() : "")) +
             (attr ? attribute_of(e, attr->str()) : e).to_string();
      first = false;
    }
    return Value::from(out);
  }
  if (name == "first" || name == "last") {
    Array a = as_list(v, err);
    if (a.empty()) return Value();
    return name == "first" ? a.front() : a.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto cps = code_points(v.str());
      std::reverse(cps.begin(), cps.end());
      return Value::from(from_code_points(cps, 0, cps.size()));
    }
    Array a = as_list(v, err);
    std::reverse(a.begin(), a.end());
    return Value::array(std::move(a));
  }
  if (name == "sort") {
    Array a = as_list(v, err);
    const Value* rev = args.get(0, "reverse");
    const Value* attr = args.get(2, "attribute");
    std::stable_sort(a.begin(), a.end(), [&](const Value& x, const Value& y) {
      return attr ? less_than(attribute_of(x, attr->str()), attribute_of(y, attr->str()))
                  : less_than(x, y);
    });
    if (rev && rev->truthy()) std::reverse(a.begin(), a.end());
    return Value::array(std::move(a));
  }
  if (name == "unique") {
    Array out;
    for (const Value& e : as_list(v, err))
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return o.equals(e); }))
        out.push_back(e);
    return Value::array(std::move(out));
  }
  if (name == "default" || name == "d") {
    const Value* dflt = args.get(0, "default_value");
    const Value* boolean = args.get(1, "boolean");
    bool use = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
    return use ? (dflt ? *dflt : Value::from(std::string())) : v;
  }
  if (name == "int") {
    if (v.is_number()) return Value::from(int64_t(v.number()));
    if (v.is_string()) return Value::from(int64_t(std::strtoll(v.str().c_str(), nullptr, 10)));
    return Value::from(int64_t(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value::from(v.number());
    if (v.is_string()) return Value::from(std::strtod(v.str().c_str(), nullptr));
    return Value::from(0.0);
  }
  if (name == "abs") {
    if (v.type() == Value::Type::integer) return Value::from(int64_t(std::llabs(v.integer())));
    return Value::from(std::fabs(v.number()));
  }
  if (name == "items" || name == "dictsort") {
    if (!v.is_object()) err("filter '" + name + "' expects a dict");
    Array a;
    for (const auto& [k, x] : v.obj()) a.push_back(Value::array({Value::from(k), x}));
    if (name == "dictsort")
      std::stable_sort(a.begin(), a.end(), [](const Value& x, const Value& y) {
        return x.arr()[0].str() < y.arr()[0].str();
      });
    return Value::array(std::move(a));
  }
  if (name == "map") {
    const Value* attr = args.get(99, "attribute");
    Array out;
    for (const Value& e : as_list(v, err)) {
      if (attr)
        out.push_back(attribute_of(e, attr->str()));
      else if (args.pos.size() >= 1 && args.pos[0].is_string())
        out.push_back(apply_filter(args.pos[0].str(), e, Args{}, err));
      else
        err("map() needs attribute= or a filter name");
    }
    return Value::array(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr") {
    if (args.pos.empty() || !args.pos[0].is_string()) err(name + "() needs an attribute name");
    Array out;
    for (const Value& e : as_list(v, err)) {
      Value a = attribute_of(e, args.pos[0].str());
      bool ok;
      if (args.pos.size() >= 2) {
        Args rest;
        rest.pos.assign(args.pos.begin() + 2, args.pos.end());
        ok = apply_test(args.pos[1].to_string(), a, rest, err);
      } else {
        ok = a.truthy();
      }
      if (ok == (name == "selectattr")) out.push_back(e);
    }
    return Value::array(std::move(out));
  }
  if (name == "indent") {
    const Value* width = args.get(0, "width");
    const Value* first = args.get(1, "first");
    const Value* blank = args.get(2, "blank");
    std::string pad(width && width->is_number() ? size_t(width->integer()) : 4, ' ');
    if (width && width->is_string()) pad = width->str();
    std::string s = need_string(), out;
    size_t start = 0;
    bool first_line = true;
    while (true) {
      size_t nl = s.find('\n', start);
      std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      bool indent_it =
          first_line ? (first && first->truthy()) : (!line.empty() || (blank && blank->truthy()));
      out += (indent_it ? pad : "") + line;
      if (nl == std::string::npos) break;
      out += "\n";
      start = nl + 1;
      first_line = false;
    }
    return Value::from(out);
  }
  if (name == "wordcount") return Value::from(int64_t(py_split(need_string(), nullptr, -1).size()));
  err("unknown filter '" + name + "'");
  return Value();
}

bool apply_test(const std::string& name, const Value& v, const Args& args, const ErrorFn& err) {
  using T = Value::Type;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.type() == T::integer;
  if (name == "float") return v.type() == T::floating;
  if (name == "boolean") return v.type() == T::boolean;
  if (name == "true") return v.type() == T::boolean && v.boolean();
  if (name == "false") return v.type() == T::boolean && !v.boolean();
  if (name == "mapping") return v.is_object();
  if (name == "sequence") return v.is_array() || v.is_string();
  if (name == "iterable") return v.is_array() || v.is_string() || v.is_object();
  if (name == "callable") return v.is_function();
  if (name == "odd" || name == "even") {
    if (v.type() != T::integer) err("test '" + name + "' expects an integer");
    return (v.integer() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value* n = args.get(0, "num");
    if (!n || !n->is_number() || n->integer() == 0) err("divisibleby needs a non-zero integer");
    return v.type() == T::integer && v.integer() % n->integer() == 0;
  }
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") {
    const Value* o = args.get(0, "other");
    return o && v.equals(*o);
  }
  if (name == "ne" || name == "!=") {
    const Value* o = args.get(0, "other");
    return !(o && v.equals(*o));
  }
  if (name == "lower") return v.is_string() && icu_case(v.str(), false) == v.str();
  if (name == "upper") return v.is_string() && icu_case(v.str(), true) == v.str();
  if (name == "in") {
    const Value* o = args.get(0, "seq");
    if (!o) return false;
    for (const Value& e : as_list(*o, err))
      if (e.equals(v)) return true;
    return false;
  }
  err("unknown test '" + name + "'");
  return false;
}

Value method(const Value& self, const std::string& name) {
  auto fn = [](Function f) { return Value::function(std::move(f)); };
  auto bad = [name](const std::string& msg) {
    fail(ErrorKind::request, "chat template: " + name + "(): " + msg);
  };
  if (self.is_string()) {
    std::string s = self.str();
    if (name == "strip" || name == "lstrip" || name == "rstrip")
      return fn([s, name](const Args& a) {
        return Value::from(py_strip(s, a.get(0, "chars"), name != "rstrip", name != "lstrip"));
      });
    if (name == "upper" || name == "lower")
      return fn([s, name](const Args&) { return Value::from(icu_case(s, name == "upper")); });
    if (name == "title") return fn([s](const Args&) { return Value::from(title_case(s)); });
    if (name == "capitalize")
      return fn([s](const Args& a) {
        return apply_filter("capitalize", Value::from(s), a, [](const std::string&) {});
      });
    if (name == "startswith" || name == "endswith")
      return fn([s, name, bad](const Args& a) {
        const Value* p = a.get(0, "prefix");
        if (!p) bad("needs an argument");
        Array options = p->is_array() ? p->arr() : Array{*p};
        for (const Value& o : options) {
          if (!o.is_string()) bad("argument must be a string or a tuple of strings");
          const std::string& x = o.str();
          bool hit = name == "startswith"
                         ? s.compare(0, x.size(), x) == 0
                         : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
          if (hit) return Value::from(true);
        }
        return Value::from(false);
      });
    if (name == "split" || name == "rsplit")
      return fn([s](const Args& a) {
        const Value* m = a.get(1, "maxsplit");
        return strings_to_array(
            py_split(s, a.get(0, "sep"), m && m->is_number() ? m->integer() : -1));
      });
    if (name == "replace")
      return fn([s, bad](const Args& a) {
        const Value *x = a.get(0, "old"), *y = a.get(1, "new"), *c = a.get(2, "count");
        if (!x || !y || !x->is_string() || !y->is_string()) bad("needs two string arguments");
        return Value::from(
            py_replace(s, x->str(), y->str(), c && c->is_number() ? c->integer() : -1));
      });
    if (name == "find")
      return fn([s](const Args& a) {
        const Value* x = a.get(0, "sub");
        size_t k = x && x->is_string() ? s.find(x->str()) : std::string::npos;
        return Value::from(k == std::string::npos ? int64_t(-1)
                                                  : int64_t(code_points(s.substr(0, k)).size()));
      });
    if (name == "count")
      return fn([s](const Args& a) {
        const Value* x = a.get(0, "sub");
        if (!x || !x->is_string() || x->str().empty()) return Value::from(int64_t(0));
        int64_t n = 0;
        for (size_t k = s.find(x->str()); k != std::string::npos;
             k = s.find(x->str(), k + x->str().size()))
          ++n;
        return Value::from(n);
      });
    if (name == "join")
      return fn([s](const Args& a) {
        const Value* x = a.get(0, "iterable");
        std::string out;
        if (x && x->is_array())
          for (size_t i = 0; i < x->arr().size(); ++i)
            out += (i ? s : "") + x->arr()[i].to_string();
        return Value::from(out);
      });
    if (name == "isdigit" || name == "isspace" || name == "isalpha")
      return fn([s, name](const Args&) {
        auto cps = code_points(s);
        bool ok = !cps.empty();
        for (uint32_t cp : cps) {
          if (name == "isdigit")
            ok &= cp >= '0' && cp <= '9';
          else if (name == "isspace")
            ok &= is_unicode_whitespace(cp);
          else
            ok &= is_word_char(cp) && cp != '_' && !(cp >= '0' && cp <= '9');
        }
        return Value::from(ok);
      });
  }
  if (self.is_object()) {
    if (name == "items")
      return fn([self](const Args&) {
        return apply_filter("items", self, Args{}, [](const std::string&) {});
      });
    if (name == "keys")
      return fn([self](const Args&) {
        Array a;
        for (const auto& [k, _] : self.obj()) a.push_back(Value::from(k));
        return Value::array(std::move(a));
      });
    if (name == "values")
      return fn([self](const Args&) {
        Array a;
        for (const auto& [_, v] : self.obj()) a.push_back(v);
        return Value::array(std::move(a));
      });
    if (name == "get")
      return fn([self](const Args& a) {
        const Value* k = a.get(0, "key");
        const Value* d = a.get(1, "default");
        const Value* v = k && k->is_string() ? self.find(k->str()) : nullptr;
        return v ? *v : (d ? *d : Value::none());
      });
  }
  return Value();
}

Value global_function(const std::string& name) {
  if (name == "namespace")
    return Value::function([](const Args& a) {
      Value ns = Value::object({}, true);
      if (!a.pos.empty() && a.pos[0].is_object())
        for (const auto& [k, v] : a.pos[0].obj()) ns.set(k, v);
      for (const auto& [k, v] : a.kw) ns.set(k, v);
      return ns;
    });
  if (name == "range")
    return Value::function([](const Args& a) {
      int64_t start = 0, stop = 0, step = 1;
      if (a.pos.size() == 1) stop = a.pos[0].integer();
      if (a.pos.size() >= 2) start = a.pos[0].integer(), stop = a.pos[1].integer();
      if (a.pos.size() >= 3) step = a.pos[2].integer();
      if (step == 0) fail(ErrorKind::request, "chat template: range() step must not be zero");
      Array out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        out.push_back(Value::from(i));
        if (out.size() > 10000000) fail(ErrorKind::resource, "chat template: range() too long");
      }
      return Value::array(std::move(out));
    });
  if (name == "raise_exception")
    return Value::function([](const Args& a) -> Value {
      fail(ErrorKind::request,
           "chat template raised: " + (a.pos.empty() ? std::string() : a.pos[0].to_string()));
    });
  if (name == "strftime_now")
    return Value::function([](const Args& a) {
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char buf[256];
      std::string fmt = a.pos.empty() ? "%Y-%m-%d" : a.pos[0].to_string();
      size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
      return Value::from(std::string(buf, n));
    });
  return Value();
}

}  // namespace tern::tokenizer::jinja
