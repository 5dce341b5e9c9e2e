// The shared half of the CLI convention (docs/cli.md) that subcommands use when they declare
// flags: range-checked numbers, fixed choices, --threads, --force and the help example.
// Exit codes follow from the exception type: CLI::ParseError (a malformed command line) exits 2,
// tern::Error (well-formed but wrong) exits 1; main.cpp does the printing.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace tern::app {

// A numeric option whose value must lie in [lo, hi], with its default shown in --help. Text that
// is not a number is a command-line error (exit 2, from CLI11's conversion); a number outside the
// range is refused with exit 1 by check_ranges(), once the whole command line is known to be
// well-formed, so a missing flag is reported before a bad value.
template <class T>
CLI::Option* add_number(CLI::App& app, const std::string& name, T& var, const std::string& help,
                        double lo, double hi);

// Throws tern::Error (ErrorKind::request) for the first out-of-range value seen while parsing.
void check_ranges();
// Refuses (exit 1) a TERN_LOG or TERN_ISA value that names nothing (TERN_THREADS is checked by
// apply_threads).
void check_environment();

// A string option restricted to `choices` (exit 2 naming the value and the choices otherwise).
CLI::Option* add_choice(CLI::App& app, const std::string& name, std::string& var,
                        const std::string& help, const std::vector<std::string>& choices);

// Throws a CLI::ParseError (exit 2) for a value our own code found malformed.
[[noreturn]] void malformed(const std::string& message);

// --threads on a compute command. apply_threads sizes the process-wide pool from it, else from
// TERN_THREADS, checking either (exit 1) before any thread starts; call it first in the callback.
struct ThreadsFlag {
  long long n = 0;
  CLI::Option* option = nullptr;
};
void add_threads(CLI::App& app, ThreadsFlag& flag);
void apply_threads(const ThreadsFlag& flag);

// "Example:" footer of a subcommand's --help.
void example(CLI::App& app, const std::string& command_line);

// Implementation detail of add_number: records an out-of-range value for check_ranges().
CLI::Validator range_validator(const std::string& name, double lo, double hi);

template <class T>
CLI::Option* add_number(CLI::App& app, const std::string& name, T& var, const std::string& help,
                        double lo, double hi) {
  return app.add_option(name, var, help)
      ->capture_default_str()
      ->check(range_validator(name, lo, hi));
}

}  // namespace tern::app
