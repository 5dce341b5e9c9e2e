// by_tokens(nt, f): calls f(std::integral_constant<int, n>) for the token count nt (1..4), so the
// decode kernels are instantiated per token count and keep their accumulators in registers.
// Plain C++ (no intrinsics): safe to include from units compiled with any -m flags.
#pragma once

#include <type_traits>

namespace tern::kernels {
namespace {

template <class F>
void by_tokens(int nt, F f) {
  switch (nt) {
    case 1:
      return f(std::integral_constant<int, 1>());
    case 2:
      return f(std::integral_constant<int, 2>());
    case 3:
      return f(std::integral_constant<int, 3>());
    default:
      return f(std::integral_constant<int, 4>());
  }
}

}  // namespace
}  // namespace tern::kernels
