// Strict JSON parsing for file headers: nlohmann::json plus duplicate-key detection.
// Owns: turning bytes into a json value or a format Error naming the file. Does not own: schema
// checks (each reader validates its own fields). nlohmann silently keeps the last duplicate key,
// which would let a corrupt header shadow a tensor, so duplicates are caught during the parse.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tern::formats {

// Parses `text`; fails (ErrorKind::format) with "<what>: ..." on invalid JSON or on a key that
// appears twice in one object (at any depth), naming the key.
nlohmann::json parse_json_strict(std::string_view text, const std::string& what);

// Reads and parses a whole JSON file; io errors for unreadable files, format errors as above.
nlohmann::json read_json_file_strict(const std::string& path);

}  // namespace tern::formats
