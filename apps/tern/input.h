// Reading what a command line points at: files or "-" for stdin, JSON with errors in our words,
// and token ids in every form the CLI accepts (docs/cli.md, "ids"). Also the one rule for
// outputs: never replace an existing one without --force.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tern::app {

// The whole file, or all of stdin for "-". ErrorKind::io naming the path when it cannot be read.
std::string read_input(const std::string& path);

// Parses JSON; ErrorKind::format "SOURCE: not valid JSON at line L column C: ..." otherwise.
nlohmann::json parse_json(const std::string& text, const std::string& source);

// Token ids from --ids SPEC: a list on the command line ("1,2,3", "1 2 3", "[1,2,3]"), "@FILE",
// or "-" for stdin. File and stdin text may be integers separated by commas, spaces or newlines,
// a JSON array, or one line of `tern tokenize` output ([1,2,3] or {"ids": [...], ...}).
// A malformed list on the command line is a CLI::ParseError (exit 2); a malformed file, an id
// beyond int32 or more than one sequence is a tern::Error (exit 1).
std::vector<int32_t> read_ids(const std::string& spec);

// Refuses (ErrorKind::request, exit 1) to replace an existing file or folder unless `force`.
// "-" (stdout) is always free.
void require_new_output(const std::string& path, bool force);

}  // namespace tern::app
