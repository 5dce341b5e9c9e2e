// tern: the command-line entry point. Builds the CLI from the registered subcommands and is one of
// the three places that catch tern::Error (the others: the HTTP handler and the trainer loop).
// Owns the exit-code convention of docs/cli.md: 0 success (and --help, --version), 1 for
// well-formed requests that fail, 2 for malformed command lines; errors are one `tern: …` line.
#include <cstdio>
#include <exception>
#include <new>
#include <regex>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "core/error.h"
#include "dist/communicator.h"

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

namespace {

// The deepest subcommand the user named, as "tern plan train", for pointing at its --help.
std::string command_path(const CLI::App& app) {
  std::string path = "tern";
  const CLI::App* at = &app;
  for (;;) {
    const auto used = at->get_subcommands();
    if (used.empty()) return path;
    at = used.front();
    path += " " + at->get_name();
  }
}

std::string command_names() {
  std::string names;
  for (const auto& c : registered_commands())
    names += (names.empty() ? "" : ", ") + std::string(c.name);
  return names;
}

// CLI11's wording rewritten so the offending word comes first and in quotes.
std::string parse_error_text(const CLI::ParseError& e, const CLI::App& app) {
  std::string m = e.what();
  std::smatch g;
  static const std::regex extras("The following arguments? (?:was|were) not expected: (.*)");
  if (std::regex_match(m, g, extras)) {
    const std::string word = g[1].str().substr(0, g[1].str().find(' '));
    if (!word.empty() && word[0] == '-') return "unknown flag '" + word + "'";
    if (app.get_subcommands().empty())
      return "unknown command '" + word + "' (commands: " + command_names() + ")";
    return "unexpected argument '" + word + "'";
  }
  static const std::regex conversion("Could not convert: (\\S+) = (.*)");
  if (std::regex_match(m, g, conversion))
    return g[1].str() + ": '" + g[2].str() + "' is not a valid value";
  if (m.starts_with("A subcommand is required")) {
    // CLI11 takes an unknown command for a stray positional; name it as what it was meant to be.
    const CLI::App* at = &app;
    while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
    const auto rest = at->remaining();
    if (!rest.empty() && !rest.front().starts_with("-"))
      return "unknown command '" + rest.front() + "'" +
             (at == &app ? " (commands: " + command_names() + ")" : "");
    return "a command is required";
  }
  if (!m.empty()) m[0] = char(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

// One line, in our words: lower layers sometimes pass on multi-line text (template excerpts) or
// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: ..." codes.
std::string one_line(std::string m) {
  for (char& c : m)
    if (c == '\n' || c == '\r') c = ' ';
  static const std::regex located(
      R"(\[json\.exception\.parse_error\.\d+\] parse error at line (\d+), column (\d+): )");
  static const std::regex any_code(R"(\[json\.exception\.[a-z_]+\.\d+\] (parse error: )?)");
  m = std::regex_replace(m, located, "not valid JSON at line $1 column $2: ");
  m = std::regex_replace(m, any_code, "");
  static const std::regex doubled("not valid JSON: not valid JSON");
  return std::regex_replace(m, doubled, "not valid JSON");
}

}  // namespace
}  // namespace tern::app

int main(int argc, char** argv) {
  using namespace tern::app;
  CLI::App app{"tern: train, compress and run DeepSeek-style models on ordinary hardware"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tern 0.1.0");
  app.footer("Conventions (exit codes, '-' for stdin/stdout, units, flags): docs/cli.md");
  for (const auto& cmd : registered_commands()) cmd.setup(*app.add_subcommand(cmd.name, cmd.help));
  // Runs after the whole command line is known to be well-formed, before any command's work.
  app.parse_complete_callback([] {
    check_ranges();
    check_environment();
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "tern: %s (see '%s --help')\n", one_line(parse_error_text(e, app)).c_str(),
                 command_path(app).c_str());
    return 2;
  } catch (const tern::Error& e) {
    std::fprintf(stderr, "tern: %s\n", one_line(e.what()).c_str());
    std::fflush(stderr);
    tern::dist::end_job_on_error(1);
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tern: out of memory\n");
    tern::dist::end_job_on_error(1);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tern: unexpected error: %s\n", one_line(e.what()).c_str());
    tern::dist::end_job_on_error(1);
    return 1;
  }
  return 0;
}
