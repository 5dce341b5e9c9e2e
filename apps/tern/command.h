// The subcommand registry: each subcommand lives in its own cmd_*.cpp and registers itself.
// Owns: the list of subcommands. Does not own: parsing (CLI11) or error reporting (main.cpp).
// Self-registration keeps main.cpp free of a growing switch and lets subcommands land
// independently.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace tern::app {

// Adds options to `sub` and sets its callback (sub.callback(...)), which does the work.
// Errors are reported by throwing tern::Error; main() prints them and exits non-zero.
using CommandSetup = void (*)(CLI::App& sub);

struct Command {
  const char* name;
  const char* help;
  CommandSetup setup;
};

bool register_command(const char* name, const char* help, CommandSetup setup);
const std::vector<Command>& registered_commands();

}  // namespace tern::app

#define TERN_CONCAT_INNER(a, b) a##b
#define TERN_CONCAT(a, b) TERN_CONCAT_INNER(a, b)
#define TERN_REGISTER_COMMAND(name, help, setup_fn)                   \
  static const bool TERN_CONCAT(tern_registered_command_, __LINE__) = \
      ::tern::app::register_command(name, help, setup_fn)
