// tern: the command-line entry point. Builds the CLI from the registered subcommands and is one of
// the three places that catch tern::Error (the others: the HTTP handler and the trainer loop).
#include <cstdio>
#include <exception>

#include "apps/tern/command.h"
#include "core/error.h"

namespace tern::app {

static std::vector<Command>& command_list() {
  static std::vector<Command> list;
  return list;
}

bool register_command(const char* name, const char* help, CommandSetup setup) {
  command_list().push_back({name, help, setup});
  return true;
}

const std::vector<Command>& registered_commands() {
  return command_list();
}

}  // namespace tern::app

int main(int argc, char** argv) {
  CLI::App app{"tern: train, compress and run DeepSeek-style models on ordinary hardware"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tern 0.1.0");
  for (const auto& cmd : tern::app::registered_commands())
    cmd.setup(*app.add_subcommand(cmd.name, cmd.help));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tern::Error& e) {
    std::fprintf(stderr, "tern: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tern: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
