// Reading JSONL inputs (task files, chats, prompts) with errors that name the line.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace tern::train {

// Calls fn(value, where) for every non-blank line of `path`, `where` being "PATH line N: " for
// the caller's own messages. ErrorKind::io when the file cannot be read, request naming the
// line when one is not JSON. Returns the number of lines handed to fn.
int64_t for_each_jsonl_line(
    const std::string& path,
    const std::function<void(const nlohmann::ordered_json&, const std::string& where)>& fn);

}  // namespace tern::train
