// Overflow-checked integer arithmetic for sizes computed from untrusted files (configs, headers).
// Owns only the arithmetic; callers turn a failure into an Error that names what overflowed.
// Builtins rather than pre-division so the check is exact and cheap.
#pragma once

#include <cstdint>
#include <optional>

namespace tern {

// a * b, or nullopt when it does not fit int64.
inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// a + b, or nullopt when it does not fit int64.
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace tern
