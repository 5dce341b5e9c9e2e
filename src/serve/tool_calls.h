// Tool calls in a model's output, parsed into OpenAI's message.tool_calls: DeepSeek-V3/R1's
// tool-call tokens (both the fenced-JSON form of V3/R1 and the bare form of V3.1), the
// <tool_call>{...}</tool_call> form of Qwen (and the R1 Qwen distills), and Llama 3's bare JSON
// object (optionally after <|python_tag|>). Owns only the text parsing; a call that is not
// well-formed JSON leaves the whole text as plain content, never an error.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tern::serve {

struct ToolCall {
  std::string id;  // "call_" + a random suffix
  std::string name;
  std::string arguments;  // a JSON object, serialised
};

struct ToolCallParse {
  std::string content;  // the text around the calls, trimmed
  std::vector<ToolCall> calls;
};

ToolCallParse parse_tool_calls(const std::string& text);

// [{"id", "type": "function", "function": {"name", "arguments"}}], with "index" when streaming.
nlohmann::ordered_json tool_calls_json(const std::vector<ToolCall>& calls, bool streaming);

}  // namespace tern::serve
