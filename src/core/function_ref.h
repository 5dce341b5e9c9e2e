// FunctionRef<R(Args...)>: a non-owning reference to a callable, for parameters called before the
// function returns (a pool's loop body, a GEMM's epilogue). Unlike std::function it never copies
// the callable onto the heap (a lambda capturing more than two words would be), so passing a
// lambda allocates nothing. The callable must outlive the call: a lambda written as the argument
// does (it lives to the end of the full expression).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace tern {

template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef> &&
                                              std::is_invocable_r_v<R, F&, Args...>>>
  FunctionRef(F&& f) noexcept  // NOLINT: implicit, as std::function's
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(args)...);
        }) {}

  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

}  // namespace tern
