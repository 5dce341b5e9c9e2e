// libFuzzer target: config.json text through ModelConfig::from_json and the parameter count
// that `tern info --config` prints next. Text nlohmann cannot parse is skipped (its grammar is
// not ours to fuzz); refusals are tern::Error; anything else, or a sanitizer report, is a finding.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/param_count.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  const nlohmann::json j =
      nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    const model::ModelConfig c = model::ModelConfig::from_json(j, "fuzz/config.json");
    (void)model::count_parameters(c);
  } catch (const Error&) {
  }
  return 0;
}
