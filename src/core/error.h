// tern::Error: the one exception type for everything that can go wrong, with a category.
// Does not own logging or recovery: the CLI main, the HTTP handler and the trainer loop catch it.
// Shaped as an exception (not error codes) because loaders are deep call chains that must unwind.
#pragma once

#include <stdexcept>
#include <string>

namespace tern {

enum class ErrorKind { io, format, config, request, resource, internal };

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message);
  ErrorKind kind() const { return kind_; }
  // The message without the "<kind> error: " prefix, to wrap in a caller's context.
  std::string message() const;

 private:
  ErrorKind kind_;
};

// Throws Error{kind, message}. A function so call sites stay one line.
[[noreturn]] void fail(ErrorKind kind, const std::string& message);

}  // namespace tern

// Internal invariants (programming errors, not bad input): throws ErrorKind::internal.
#define TERN_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::tern::fail(::tern::ErrorKind::internal,                                           \
                   std::string("internal check failed: " #cond " at ") + __FILE__ + ":" + \
                       std::to_string(__LINE__));                                         \
  } while (0)
