#include "train/jsonl.h"

#include <fstream>

#include "core/error.h"

namespace tern::train {

int64_t for_each_jsonl_line(
    const std::string& path,
    const std::function<void(const nlohmann::ordered_json&, const std::string& where)>& fn) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::io, "cannot read " + path);
  int64_t handled = 0;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + " line " + std::to_string(n) + ": ";
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::ordered_json::exception& e) {
      fail(ErrorKind::request, where + "not valid JSON (" + e.what() + ")");
    }
    fn(j, where);
    ++handled;
  }
  return handled;
}

}  // namespace tern::train
