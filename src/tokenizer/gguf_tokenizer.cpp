#include "tokenizer/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/llama_cpp_pre.h"
#include "tokenizer/tokenizer_json.h"

namespace tern::tokenizer {
namespace {

[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& why) {
  fail(ErrorKind::format, source + ": metadata key '" + key + "' " + why);
}

}  // namespace

bool gguf_has_tokenizer(const formats::GgufMetadata& md) {
  return md.has("tokenizer.ggml.tokens");
}

Tokenizer tokenizer_from_gguf(const formats::GgufMetadata& md, const std::string& source) {
  const std::string model = md.get_string_or("tokenizer.ggml.model", "");
  if (model != "gpt2")
    bad(source, "tokenizer.ggml.model",
        "is '" + model +
            "'; tern reads byte-level BPE ('gpt2') vocabularies from GGUF (give "
            "--tokenizer DIR with the original tokenizer.json)");
  const std::string pre = md.get_string_or("tokenizer.ggml.pre", "default");
  const nlohmann::json pre_tokenizer = pre_tokenizer_for_llama_cpp_name(pre);
  if (pre_tokenizer.is_null())
    bad(source, "tokenizer.ggml.pre",
        "is '" + pre +
            "', a pre-tokenizer tern does not know (give --tokenizer DIR with the "
            "original tokenizer.json)");
  const auto& tokens = md.get_string_array("tokenizer.ggml.tokens");
  std::vector<int64_t> types;
  if (md.has("tokenizer.ggml.token_type")) {
    types = md.get_i64_array("tokenizer.ggml.token_type");
    if (types.size() != tokens.size())
      bad(source, "tokenizer.ggml.token_type",
          "has " + std::to_string(types.size()) + " entries for " + std::to_string(tokens.size()) +
              " tokens");
  }

  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  for (size_t id = 0; id < tokens.size(); ++id) {
    const int64_t type = types.empty() ? 1 : types[id];
    // Matched on the raw text ("normalized": false), as the Qwen and Llama-3 files have them.
    if (type == kTokenControl || type == kTokenUserDefined)
      added.push_back(
          added_token_json<nlohmann::json>(int64_t(id), tokens[id], type == kTokenControl));
    if (!vocab.contains(tokens[id])) vocab[tokens[id]] = id;  // the first id of a repeated string
  }
  nlohmann::json merges = nlohmann::json::array();
  if (md.has("tokenizer.ggml.merges"))
    for (const auto& m : md.get_string_array("tokenizer.ggml.merges")) merges.push_back(m);

  // GGUF has no key for the normalizer; Qwen2-family tokenizer.json files (Qwen2.5, Qwen3,
  // R1-Distill-Qwen) all apply NFC, so their pre-tokenizer names bring it back.
  const nlohmann::json normalizer = pre == "qwen2" || pre == "deepseek-r1-qwen"
                                        ? nlohmann::json{{"type", "NFC"}}
                                        : nlohmann::json(nullptr);
  nlohmann::json tok =
      byte_level_bpe_json<nlohmann::json>(vocab, merges, added, normalizer, pre_tokenizer, nullptr);
  nlohmann::json config = {{"add_bos_token", false}, {"add_eos_token", false}};
  auto token_name = [&](const char* key) -> std::string {
    if (!md.has(key)) return "";
    const int64_t id = md.get_i64(key);
    if (id < 0 || id >= int64_t(tokens.size()))
      bad(source, key, "= " + std::to_string(id) + " is not a token id");
    return tokens[size_t(id)];
  };
  const std::string bos = token_name("tokenizer.ggml.bos_token_id"),
                    eos = token_name("tokenizer.ggml.eos_token_id");
  if (!bos.empty()) config["bos_token"] = bos;
  if (!eos.empty()) config["eos_token"] = eos;
  if (md.get_bool_or("tokenizer.ggml.add_bos_token", false) && !bos.empty()) {
    const int64_t id = md.get_i64("tokenizer.ggml.bos_token_id");
    tok["post_processor"] = bos_template_json<nlohmann::json>(bos, id);
  }
  if (md.has("tokenizer.chat_template"))
    config["chat_template"] = md.get_string("tokenizer.chat_template");
  return Tokenizer::from_json_text(tok.dump(), config.dump(), {}, source + " (GGUF tokenizer)");
}

}  // namespace tern::tokenizer
