// libFuzzer target: a chat template source compiled and rendered over a fixed small
// conversation (system, user, assistant with a tool call, tool result, user), as
// apply_chat_template would. Refusals are tern::Error; anything else, or a sanitizer report, is
// a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace {
const nlohmann::ordered_json& conversation() {
  static const nlohmann::ordered_json kMessages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
      "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
    {"role": "tool", "content": "4"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": [{"type": "text", "text": "And 3+3?"}]}
  ])");
  return kMessages;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::tokenizer;
  try {
    ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size));
    t.set_special_tokens("<s>", "</s>");
    ChatOptions opts;
    opts.extra["enable_thinking"] = false;
    (void)t.render(conversation(), opts);
    opts.add_generation_prompt = false;
    opts.tools = nlohmann::ordered_json::parse(
        R"([{"type": "function", "function": {"name": "add", "parameters": {}}}])");
    (void)t.render(conversation(), opts);
  } catch (const tern::Error&) {
  }
  return 0;
}
