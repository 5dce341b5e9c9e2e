#include "tokenizer/gguf_vocab.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "formats/strict_json.h"
#include "tokenizer/llama_cpp_pre.h"
#include "tokenizer/tokenizer.h"

namespace tern::tokenizer {
namespace {

std::string merge_text(const nlohmann::json& m, const std::string& where) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return m[0].get<std::string>() + " " + m[1].get<std::string>();
  fail(ErrorKind::format, where + ": a merge is neither \"a b\" nor [\"a\", \"b\"]");
}

}  // namespace

GgufVocab gguf_vocab_from_dir(const std::string& dir, int64_t model_vocab, const std::string& pre) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  const nlohmann::json j = formats::read_json_file_strict(path);
  const Tokenizer tok = Tokenizer::load(dir);  // validates the file as tern reads it
  const nlohmann::json& model = j.at("model");
  if (model.value("type", "BPE") != "BPE")
    fail(ErrorKind::format, path + ": model.type '" + model.value("type", "") +
                                "' cannot be written to GGUF (byte-level BPE only)");
  if (model.value("byte_fallback", false))
    fail(ErrorKind::format, path +
                                ": byte-fallback BPE (SentencePiece style) cannot be written "
                                "to GGUF by tern (byte-level BPE only)");

  int64_t n_tokens = int64_t(tok.vocab_size());
  if (n_tokens > model_vocab)
    fail(ErrorKind::format, path + ": " + std::to_string(n_tokens) +
                                " tokens do not fit the model's " + std::to_string(model_vocab) +
                                " embedding rows");
  std::vector<std::string> tokens(static_cast<size_t>(model_vocab));
  std::vector<int32_t> types(size_t(model_vocab), kTokenNormal);
  GgufVocab out;
  int64_t padded = 0;
  for (int64_t id = 0; id < model_vocab; ++id) {
    if (id < n_tokens && tok.is_known(int32_t(id))) {
      tokens[size_t(id)] = tok.id_to_token(int32_t(id));
    } else {
      tokens[size_t(id)] = "[PAD" + std::to_string(id) + "]";
      types[size_t(id)] = kTokenUnused;
      ++padded;
    }
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& t : j["added_tokens"]) {
      const int64_t id = t.value("id", int64_t(-1));
      if (id >= 0 && id < model_vocab)
        types[size_t(id)] = t.value("special", false) ? kTokenControl : kTokenUserDefined;
    }
  std::vector<std::string> merges;
  if (model.contains("merges"))
    for (const auto& m : model["merges"]) merges.push_back(merge_text(m, path));

  std::string pre_name = pre;
  if (pre_name.empty()) {
    pre_name = llama_cpp_pre_name(j.value("pre_tokenizer", nlohmann::json()));
    if (pre_name.empty()) {
      pre_name = "default";
      out.notes.push_back(
          "the pre-tokenizer is not one llama.cpp knows by name; wrote 'default', so llama.cpp "
          "will split text differently from tern (pass --tokenizer-pre NAME to choose)");
    }
  }
  if (padded > 0)
    out.notes.push_back("padded the vocabulary with " + std::to_string(padded) +
                        " unused tokens to the model's " + std::to_string(model_vocab) + " rows");

  auto& k = out.keys;
  k.add("tokenizer.ggml.model", formats::gguf_string("gpt2"));
  k.add("tokenizer.ggml.pre", formats::gguf_string(pre_name));
  k.add("tokenizer.ggml.tokens", formats::gguf_string_array(std::move(tokens)));
  k.add("tokenizer.ggml.token_type", formats::gguf_i32_array(types));
  k.add("tokenizer.ggml.merges", formats::gguf_string_array(std::move(merges)));
  if (tok.bos_id() >= 0) k.add("tokenizer.ggml.bos_token_id", formats::gguf_u32(tok.bos_id()));
  if (tok.eos_id() >= 0) k.add("tokenizer.ggml.eos_token_id", formats::gguf_u32(tok.eos_id()));
  if (const auto pad = tok.token_to_id(tok.config().pad_token);
      !tok.config().pad_token.empty() && pad)
    k.add("tokenizer.ggml.padding_token_id", formats::gguf_u32(uint32_t(*pad)));
  k.add("tokenizer.ggml.add_bos_token", formats::gguf_bool(!tok.special_prefix().empty()));
  k.add("tokenizer.ggml.add_eos_token", formats::gguf_bool(!tok.special_suffix().empty()));
  const auto& templates = tok.config().chat_templates;
  if (auto it = templates.find("default"); it != templates.end())
    k.add("tokenizer.chat_template", formats::gguf_string(it->second));
  for (const auto& [name, text] : templates)
    if (name != "default") k.add("tokenizer.chat_template." + name, formats::gguf_string(text));
  return out;
}

}  // namespace tern::tokenizer
