// Runs a function on every rank of an in-process group (dist/in_process.h), one thread each, and
// rethrows the first failure: how the tests drive collective code without mpirun.
#pragma once

#include <exception>
#include <thread>
#include <vector>

#include "dist/in_process.h"

namespace tern::dist::test {

template <class Fn>
void on_ranks(int n, Fn fn) {
  auto group = make_in_process_group(n);
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(*group[size_t(r)]);
      } catch (...) {
        errors[size_t(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace tern::dist::test
