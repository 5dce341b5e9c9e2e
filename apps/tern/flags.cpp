// Range checks, choices, --threads and help examples for every subcommand (see flags.h).
// Range errors are recorded during parsing and thrown afterwards because CLI11 runs validators
// before it checks required flags, and a malformed command line must win (exit 2 before 1).
#include "apps/tern/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "core/error.h"
#include "core/thread_pool.h"

namespace tern::app {
namespace {

std::string& first_range_error() {
  static std::string message;
  return message;
}

// Bounds as a person types them: 257, 16777216, 0.5, 1e+18 -> "1e18".
std::string bound_text(double v) {
  char buf[64];
  if (v >= 18446744073709551615.0) return "18446744073709551615";  // uint64 max, as typed
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  std::string s = buf;
  if (const size_t e = s.find("e+"); e != std::string::npos) s.erase(e + 1, 1);
  return s;
}

}  // namespace

CLI::Validator range_validator(const std::string& name, double lo, double hi) {
  const std::string range = "[" + bound_text(lo) + ", " + bound_text(hi) + "]";
  return CLI::Validator(
      [name, lo, hi, range](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long double v = std::strtold(text.c_str(), &end);
        // Not a number at all: let CLI11's conversion report it as a malformed value.
        if (text.empty() || *end != '\0') return {};
        if ((errno == ERANGE || !(v >= lo && v <= hi)) && first_range_error().empty())
          first_range_error() = name + " must be in " + range + ", got " + text;
        return {};
      },
      "in " + range);
}

void check_ranges() {
  if (!first_range_error().empty()) fail(ErrorKind::request, first_range_error());
}

void check_environment() {
  // A typo in these would otherwise be ignored silently (the library falls back to defaults).
  const std::pair<const char*, std::vector<std::string>> vars[] = {
      {"TERN_LOG", {"error", "warn", "info", "debug"}},
      {"TERN_ISA", {"avx512", "avx2", "scalar"}},
  };
  for (const auto& [var, allowed] : vars) {
    const char* v = std::getenv(var);
    if (!v) continue;
    bool ok = false;
    std::string list;
    for (const auto& a : allowed) {
      ok = ok || a == v;
      list += (list.empty() ? "" : ", ") + a;
    }
    if (!ok)
      fail(ErrorKind::request, std::string(var) + " must be one of " + list + ", got '" + v + "'");
  }
}

CLI::Option* add_choice(CLI::App& app, const std::string& name, std::string& var,
                        const std::string& help, const std::vector<std::string>& choices) {
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  return app.add_option(name, var, help + " (" + list + ")")
      ->capture_default_str()
      ->check(CLI::Validator(
          [name, choices, list](std::string& text) -> std::string {
            for (const auto& c : choices)
              if (text == c) return {};
            return "'" + text + "' is not one of " + list;
          },
          ""));
}

void malformed(const std::string& message) {
  throw CLI::ValidationError(message);
}

void add_threads(CLI::App& app, ThreadsFlag& flag) {
  flag.option =
      app.add_option("--threads", flag.n,
                     "worker threads, 1 to 4 x CPUs (default: TERN_THREADS, else the " +
                         std::to_string(available_cpus()) + " CPUs this process may use)");
}

void apply_threads(const ThreadsFlag& flag) {
  if (flag.option && flag.option->count() > 0)
    ThreadPool::set_global_threads(checked_thread_count(flag.n, "--threads"));
  else
    ThreadPool::set_global_threads(thread_count_from_env() > 0 ? thread_count_from_env()
                                                               : available_cpus());
}

void example(CLI::App& app, const std::string& command_line) {
  app.footer("Example:\n  " + command_line);
}

}  // namespace tern::app
