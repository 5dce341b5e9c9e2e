// ApiError: a request the server refuses, carried to the HTTP handler with its status code and
// OpenAI's error shape {"error": {"message", "type", "param", "code"}}. Thrown by request
// parsing and the backends; the handler turns it (and any tern::Error) into a JSON reply, so no
// client input ever ends a connection without an answer.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace tern::serve {

class ApiError : public std::runtime_error {
 public:
  // type: OpenAI's error types ("invalid_request_error", "authentication_error",
  // "rate_limit_error", "server_error", ...); param: the request field at fault, or empty.
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = "", std::string code = "");
  int status() const { return status_; }
  nlohmann::json body() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// 400 invalid_request_error naming `param`.
[[noreturn]] void bad_request(const std::string& param, const std::string& message);

}  // namespace tern::serve
