// Jinja built-ins for chat templates: filters, tests, methods of str/dict/list values and the
// global functions (namespace, range, raise_exception, strftime_now). Owns their semantics,
// which follow Python/Jinja2 as transformers renders them. Errors throw tern::Error via `fail_at`.
#pragma once

#include <functional>
#include <string>

#include "tokenizer/jinja/value.h"

namespace tern::tokenizer::jinja {

using ErrorFn = std::function<void(const std::string&)>;  // throws, naming the template position

Value apply_filter(const std::string& name, const Value& v, const Args& args,
                   const ErrorFn& fail_at);
bool apply_test(const std::string& name, const Value& v, const Args& args, const ErrorFn& fail_at);
// A bound method such as "a b".split or d.items; undefined if the type has no such method.
Value method(const Value& self, const std::string& name);
// Global functions; undefined if `name` is not one.
Value global_function(const std::string& name);

// Python str helpers shared with the interpreter.
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right);

}  // namespace tern::tokenizer::jinja
