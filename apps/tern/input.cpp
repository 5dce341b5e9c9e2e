// Inputs named on the command line (see input.h). Ids accept every shape a pipeline produces so
// `tern tokenize M | tern logits M --ids -` works without a converter in between.
#include "apps/tern/input.h"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/tern/flags.h"
#include "core/error.h"

namespace tern::app {

std::string read_input(const std::string& path) {
  std::ostringstream text;
  if (path == "-") {
    text << std::cin.rdbuf();
    if (std::cin.bad()) fail(ErrorKind::io, "cannot read stdin");
    return text.str();
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail(ErrorKind::io, path + ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::io, path + ": cannot open (" + std::strerror(errno) + ")");
  text << in.rdbuf();
  return text.str();
}

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the offset just past the failure; count lines as a person would.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i)
      text[i] == '\n' ? (++line, column = 1) : ++column;
    std::string why = e.what();
    if (const size_t colon = why.find(": "); colon != std::string::npos)
      why = why.substr(colon + 2);
    fail(ErrorKind::format, source + ": not valid JSON at line " + std::to_string(line) +
                                " column " + std::to_string(column) + ": " + why);
  }
}

namespace {

// One id; `where` says where it came from for the message.
int32_t id_value(long long v, const std::string& where) {
  if (v < 0 || v > INT32_MAX)
    fail(ErrorKind::request,
         where + ": " + std::to_string(v) + " is not a token id (must be 0 to 2147483647)");
  return int32_t(v);
}

std::vector<int32_t> ids_from_json(const nlohmann::json& j, const std::string& where) {
  const nlohmann::json* list = &j;
  if (j.is_object() && j.contains("ids")) list = &j["ids"];
  if (!list->is_array())
    fail(ErrorKind::format, where + ": expected a JSON array of ids or {\"ids\": [...]}");
  std::vector<int32_t> ids;
  for (const auto& v : *list) {
    if (!v.is_number_integer())
      fail(ErrorKind::format, where + ": ids must be integers, got " + v.dump());
    ids.push_back(id_value(v.get<long long>(), where));
  }
  return ids;
}

// Integers separated by commas, spaces or newlines. Returns false (with the bad word) when a
// word is not an integer, so the caller decides which exit code that deserves.
bool ids_from_list(const std::string& text, std::vector<int32_t>& ids, std::string& bad,
                   const std::string& where) {
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ',' || std::isspace(static_cast<unsigned char>(text[i]))))
      ++i;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && text[j] != ',' && !std::isspace(static_cast<unsigned char>(text[j])))
      ++j;
    const std::string word = text.substr(i, j - i);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(word.c_str(), &end, 10);
    if (*end != '\0' || errno == ERANGE) {
      bad = word;
      return false;
    }
    ids.push_back(id_value(v, where));
    i = j;
  }
  return true;
}

std::vector<int32_t> ids_from_text(const std::string& text, const std::string& where,
                                   bool command_line) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) fail(ErrorKind::request, where + ": no token ids given");
  if (text[first] == '[' || text[first] == '{') {
    // One JSON value, or JSON lines of which there must be exactly one (one sequence).
    const auto whole = nlohmann::json::parse(text, nullptr, false);
    if (!whole.is_discarded()) return ids_from_json(whole, where);
    std::istringstream lines(text);
    std::vector<int32_t> ids;
    int records = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (++records > 1)
        fail(ErrorKind::request,
             where + ": holds more than one sequence (one JSON line each); give one");
      ids = ids_from_json(parse_json(line, where), where);
    }
    return ids;
  }
  std::vector<int32_t> ids;
  std::string bad;
  if (!ids_from_list(text, ids, bad, where)) {
    const std::string message = where + ": '" + bad +
                                "' is not a token id (expected integers separated by commas, "
                                "spaces or newlines, or a JSON array)";
    if (command_line) malformed(message);
    fail(ErrorKind::format, message);
  }
  return ids;
}

}  // namespace

std::vector<int32_t> read_ids(const std::string& spec) {
  if (spec == "-") return ids_from_text(read_input("-"), "--ids - (stdin)", false);
  if (spec.starts_with("@")) {
    const std::string path = spec.substr(1);
    return ids_from_text(read_input(path), path, false);
  }
  return ids_from_text(spec, "--ids", true);
}

void require_new_output(const std::string& path, bool force) {
  std::error_code ec;
  if (path == "-" || force || !std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
    return;
  fail(ErrorKind::request, path + ": already exists; pass --force to replace it");
}

}  // namespace tern::app
