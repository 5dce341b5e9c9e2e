// The committed reference fixtures as the model tests read them (tests/golden, written by
// tests/reference): a fixture's folder and its case.json.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace tern::test {

inline std::string golden(const std::string& name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}

inline nlohmann::json read_case(const std::string& dir) {
  std::ifstream in(dir + "/case.json");
  return nlohmann::json::parse(in);
}

}  // namespace tern::test
