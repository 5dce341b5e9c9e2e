#include "formats/strict_json.h"

#include <set>
#include <vector>

#include "core/error.h"
#include "formats/mapped_file.h"

namespace tern::formats {

nlohmann::json parse_json_strict(std::string_view text, const std::string& what) {
  // One key set per open object; the callback sees object_start/key/object_end in order.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      open_objects.emplace_back();
    } else if (event == E::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == E::key && !open_objects.empty() && duplicate.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, what + ": invalid JSON: " + e.what());
  }
  if (!duplicate.empty()) fail(ErrorKind::format, what + ": duplicate key '" + duplicate + "'");
  return j;
}

nlohmann::json read_json_file_strict(const std::string& path) {
  auto file = MappedFile::open(path);
  const char* p = reinterpret_cast<const char*>(file->data());
  return parse_json_strict(std::string_view(p, file->size()), path);
}

}  // namespace tern::formats
