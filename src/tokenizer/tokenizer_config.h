// tokenizer_config.json: the transformers-side settings that change what users get —
// add_bos_token / add_eos_token, the bos/eos/pad/unk token strings, the tokenizer class and the
// chat templates (a string or a list of named templates). Owns parsing only.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace tern::tokenizer {

struct TokenizerConfig {
  std::optional<bool> add_bos_token, add_eos_token;
  std::string bos_token, eos_token, pad_token, unk_token;  // empty if unset/null
  std::string tokenizer_class;
  bool clean_up_tokenization_spaces = false;
  // "default" holds a plain-string template; named templates keep their names.
  std::map<std::string, std::string> chat_templates;

  static TokenizerConfig from_json(const nlohmann::json& j, const std::string& where);
};

}  // namespace tern::tokenizer
