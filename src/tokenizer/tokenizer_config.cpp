// tokenizer_config.json parsing; token fields come as a string, null, or an AddedToken object
// ({"__type": "AddedToken", "content": ...}), all of which appear in real checkpoints.
#include "tokenizer/tokenizer_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tern::tokenizer {

namespace {

std::string token_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return {};
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  fail(ErrorKind::format, where + "." + key + ": expected a string, null or {\"content\": ...}");
}

std::optional<bool> bool_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_boolean()) fail(ErrorKind::format, where + "." + key + ": expected true or false");
  return j[key].get<bool>();
}

}  // namespace

TokenizerConfig TokenizerConfig::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(ErrorKind::format, where + ": expected a JSON object");
  TokenizerConfig c;
  c.add_bos_token = bool_field(j, "add_bos_token", where);
  c.add_eos_token = bool_field(j, "add_eos_token", where);
  c.bos_token = token_field(j, "bos_token", where);
  c.eos_token = token_field(j, "eos_token", where);
  c.pad_token = token_field(j, "pad_token", where);
  c.unk_token = token_field(j, "unk_token", where);
  if (j.contains("tokenizer_class") && j["tokenizer_class"].is_string())
    c.tokenizer_class = j["tokenizer_class"].get<std::string>();
  c.clean_up_tokenization_spaces =
      bool_field(j, "clean_up_tokenization_spaces", where).value_or(false);
  if (j.contains("chat_template") && !j["chat_template"].is_null()) {
    const auto& t = j["chat_template"];
    if (t.is_string()) {
      c.chat_templates["default"] = t.get<std::string>();
    } else if (t.is_array()) {
      for (size_t i = 0; i < t.size(); ++i) {
        std::string w = where + ".chat_template[" + std::to_string(i) + "]";
        if (!t[i].contains("name") || !t[i].contains("template"))
          fail(ErrorKind::format, w + ": expected {\"name\": ..., \"template\": ...}");
        c.chat_templates[t[i]["name"].get<std::string>()] = t[i]["template"].get<std::string>();
      }
    } else {
      fail(ErrorKind::format,
           where + ".chat_template: expected a string or a list of named templates");
    }
  }
  return c;
}

}  // namespace tern::tokenizer
