// The committed reference fixtures as the generation tests use them: a fixture's folder and
// the first ids of its case (a prompt).
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tern::test {

inline std::string golden(const char* name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}

// The fixture's case ids, at most n of them.
inline std::vector<int32_t> case_ids(const char* name,
                                     size_t n = std::numeric_limits<size_t>::max()) {
  std::ifstream in(golden(name) + "/case.json");
  auto ids = nlohmann::json::parse(in).at("ids").get<std::vector<int32_t>>();
  ids.resize(std::min(n, ids.size()));
  return ids;
}

}  // namespace tern::test
