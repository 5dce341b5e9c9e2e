// Evaluates a parsed template against a context of global variables and returns the rendered
// text. Owns scoping (a for loop body and a macro get their own scope, so `set` inside them does
// not leak — which is why templates use namespace()), loop variables and macro calls.
#pragma once

#include <string>

#include "tokenizer/jinja/parser.h"
#include "tokenizer/jinja/value.h"

namespace tern::tokenizer::jinja {

// `globals` must be a dict of the template variables.
// Output is capped at `max_output` bytes so a runaway template cannot exhaust memory.
std::string render(const Body& body, const Value& globals, size_t max_output = size_t(64) << 20);

}  // namespace tern::tokenizer::jinja
