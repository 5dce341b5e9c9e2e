#include "core/error.h"

namespace tern {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::io:
      return "io";
    case ErrorKind::format:
      return "format";
    case ErrorKind::config:
      return "config";
    case ErrorKind::request:
      return "request";
    case ErrorKind::resource:
      return "resource";
    case ErrorKind::internal:
      return "internal";
  }
  return "unknown";
}

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(std::string(error_kind_name(kind)) + " error: " + message), kind_(kind) {}

std::string Error::message() const {
  const std::string prefix = std::string(error_kind_name(kind_)) + " error: ";
  const std::string text = what();
  return text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : text;
}

void fail(ErrorKind kind, const std::string& message) {
  throw Error(kind, message);
}

}  // namespace tern
