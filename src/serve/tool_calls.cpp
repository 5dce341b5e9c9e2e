#include "serve/tool_calls.h"

#include <optional>
#include <random>

namespace tern::serve {
namespace {

using Json = nlohmann::ordered_json;

// DeepSeek's tool-call tokens (fullwidth bars, U+2581 word separators), as its tokenizer spells
// them.
const std::string kCallsBegin =
    "<\xef\xbd\x9ctool\xe2\x96\x81"
    "calls\xe2\x96\x81"
    "begin\xef\xbd\x9c>";
const std::string kCallsEnd =
    "<\xef\xbd\x9ctool\xe2\x96\x81"
    "calls\xe2\x96\x81"
    "end\xef\xbd\x9c>";
const std::string kCallBegin =
    "<\xef\xbd\x9ctool\xe2\x96\x81"
    "call\xe2\x96\x81"
    "begin\xef\xbd\x9c>";
const std::string kCallEnd =
    "<\xef\xbd\x9ctool\xe2\x96\x81"
    "call\xe2\x96\x81"
    "end\xef\xbd\x9c>";
const std::string kSep =
    "<\xef\xbd\x9ctool\xe2\x96\x81"
    "sep\xef\xbd\x9c>";

std::string trim(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return {};
  const size_t b = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(a, b - a + 1));
}

std::string call_id() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  static const char* kDigits = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kDigits[gen() % 36];
  return id;
}

// A JSON object's text, normalised; nullopt when `text` is not one object.
std::optional<std::string> object_text(std::string_view text) {
  try {
    const Json j = Json::parse(trim(text));
    if (!j.is_object()) return std::nullopt;
    return j.dump();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// {"name": ..., "arguments"|"parameters": {...}} as one call.
std::optional<ToolCall> named_object(std::string_view text) {
  try {
    const Json j = Json::parse(trim(text));
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
    const Json* args = j.contains("arguments")    ? &j["arguments"]
                       : j.contains("parameters") ? &j["parameters"]
                                                  : nullptr;
    ToolCall c{call_id(), j["name"].get<std::string>(), "{}"};
    if (args && args->is_string()) {
      const auto inner = object_text(args->get<std::string>());
      if (!inner) return std::nullopt;
      c.arguments = *inner;
    } else if (args) {
      if (!args->is_object()) return std::nullopt;
      c.arguments = args->dump();
    }
    return c;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// One DeepSeek call body: "function<sep>NAME\n```json\nARGS\n```" or "NAME<sep>ARGS".
std::optional<ToolCall> deepseek_call(std::string_view body) {
  const size_t sep = body.find(kSep);
  if (sep == std::string_view::npos) return std::nullopt;
  std::string_view head = body.substr(0, sep), rest = body.substr(sep + kSep.size());
  std::string name;
  if (trim(head) == "function" || trim(head).empty()) {
    const size_t nl = rest.find('\n');
    name = trim(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  } else {
    name = trim(head);
  }
  std::string args = trim(rest);
  if (args.starts_with("```")) {
    const size_t nl = args.find('\n'), close = args.rfind("```");
    if (nl == std::string::npos || close <= nl) return std::nullopt;
    args = trim(std::string_view(args).substr(nl + 1, close - nl - 1));
  }
  const auto obj = object_text(args);
  if (name.empty() || !obj) return std::nullopt;
  return ToolCall{call_id(), name, *obj};
}

std::optional<ToolCallParse> parse_deepseek(const std::string& text) {
  const size_t begin = text.find(kCallsBegin);
  if (begin == std::string::npos) return std::nullopt;
  ToolCallParse p;
  size_t end = text.find(kCallsEnd, begin);
  const size_t body_end = end == std::string::npos ? text.size() : end;
  for (size_t at = text.find(kCallBegin, begin); at != std::string::npos && at < body_end;) {
    const size_t start = at + kCallBegin.size();
    const size_t stop = text.find(kCallEnd, start);
    if (stop == std::string::npos || stop > body_end) return std::nullopt;
    const auto call = deepseek_call(std::string_view(text).substr(start, stop - start));
    if (!call) return std::nullopt;
    p.calls.push_back(*call);
    at = text.find(kCallBegin, stop);
  }
  if (p.calls.empty()) return std::nullopt;
  p.content = trim(text.substr(0, begin) +
                   (end == std::string::npos ? "" : text.substr(end + kCallsEnd.size())));
  return p;
}

std::optional<ToolCallParse> parse_tagged(const std::string& text) {
  const std::string open = "<tool_call>", close = "</tool_call>";
  if (text.find(open) == std::string::npos) return std::nullopt;
  ToolCallParse p;
  std::string outside;
  size_t at = 0;
  while (true) {
    const size_t b = text.find(open, at);
    if (b == std::string::npos) break;
    const size_t e = text.find(close, b);
    if (e == std::string::npos) return std::nullopt;
    const auto call =
        named_object(std::string_view(text).substr(b + open.size(), e - b - open.size()));
    if (!call) return std::nullopt;
    p.calls.push_back(*call);
    outside += text.substr(at, b - at);
    at = e + close.size();
  }
  p.content = trim(outside + text.substr(at));
  return p;
}

std::optional<ToolCallParse> parse_bare_json(const std::string& text) {
  std::string body = trim(text);
  const std::string tag = "<|python_tag|>";
  if (body.starts_with(tag)) body = trim(std::string_view(body).substr(tag.size()));
  if (!body.starts_with("{")) return std::nullopt;
  // Several calls may be separated by ';' (Llama 3.2) or newlines.
  ToolCallParse p;
  try {
    const Json j = Json::parse(body);
    if (const auto c = named_object(body)) p.calls.push_back(*c);
    (void)j;
  } catch (const std::exception&) {
    size_t at = 0;
    while (at < body.size()) {
      size_t next = body.find_first_of(";\n", at);
      if (next == std::string::npos) next = body.size();
      const std::string part = trim(std::string_view(body).substr(at, next - at));
      if (!part.empty()) {
        const auto c = named_object(part);
        if (!c) return std::nullopt;
        p.calls.push_back(*c);
      }
      at = next + 1;
    }
  }
  if (p.calls.empty()) return std::nullopt;
  return p;
}

}  // namespace

ToolCallParse parse_tool_calls(const std::string& text) {
  if (auto p = parse_deepseek(text)) return *p;
  if (auto p = parse_tagged(text)) return *p;
  if (auto p = parse_bare_json(text)) return *p;
  return {text, {}};
}

nlohmann::ordered_json tool_calls_json(const std::vector<ToolCall>& calls, bool streaming) {
  Json out = Json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    Json c = Json::object();
    if (streaming) c["index"] = i;
    c["id"] = calls[i].id;
    c["type"] = "function";
    c["function"] = {{"name", calls[i].name}, {"arguments", calls[i].arguments}};
    out.push_back(c);
  }
  return out;
}

}  // namespace tern::serve
