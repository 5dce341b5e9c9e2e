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

// Pearson's chi-square of observed counts against expected probabilities over `draws` draws.
inline double chi_square(const std::vector<double>& counts, const std::vector<double>& probs,
                         int draws) {
  double chi2 = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const double e = probs[k] * draws;
    chi2 += (counts[k] - e) * (counts[k] - e) / e;
  }
  return chi2;
}

}  // namespace tern::test
