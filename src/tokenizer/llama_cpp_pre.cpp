#include "tokenizer/llama_cpp_pre.h"

#include <vector>

#include "tokenizer/bpe_trainer.h"

namespace tern::tokenizer {
namespace {

constexpr const char* kLlama3Regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr const char* kQwen2Regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// One Split on `regex` followed by a ByteLevel step that does not split again (how the Llama-3
// and Qwen2 tokenizer.json files spell it).
nlohmann::json split_then_byte_level(const char* regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", regex}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"},
             {"add_prefix_space", false},
             {"trim_offsets", false},
             {"use_regex", false}}}}};
}

// Regexes as written in tokenizer.json, with CR/LF characters spelled as escapes so that files
// writing either form compare equal.
std::string normalised(const std::string& re) {
  std::string out;
  for (char ch : re) {
    if (ch == '\r')
      out += "\\r";
    else if (ch == '\n')
      out += "\\n";
    else
      out += ch;
  }
  return out;
}

// The Split regexes of a pre_tokenizer (a Sequence or a single one), in order, and whether a
// ByteLevel step applies GPT-2's own regex; other steps are listed as "<Type>".
void split_regexes(const nlohmann::json& p, std::vector<std::string>* out, bool* gpt2_regex) {
  if (!p.is_object()) return;
  const std::string type = p.value("type", "");
  if (type == "Sequence" && p.contains("pretokenizers")) {
    for (const auto& q : p["pretokenizers"]) split_regexes(q, out, gpt2_regex);
  } else if (type == "Split" && p.contains("pattern") && p["pattern"].contains("Regex")) {
    out->push_back(normalised(p["pattern"]["Regex"].get<std::string>()));
  } else if (type == "ByteLevel") {
    *gpt2_regex = *gpt2_regex || p.value("use_regex", true);
  } else {
    out->push_back("<" + type + ">");
  }
}

}  // namespace

nlohmann::json pre_tokenizer_for_llama_cpp_name(const std::string& name) {
  if (name == "deepseek-v3") return nlohmann::json(deepseek_v3_pre_tokenizer());
  if (name == "llama-bpe" || name == "llama3") return split_then_byte_level(kLlama3Regex);
  if (name == "qwen2" || name == "deepseek-r1-qwen") return split_then_byte_level(kQwen2Regex);
  if (name == "gpt-2" || name == "default")
    return {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}};
  return nullptr;
}

std::string llama_cpp_pre_name(const nlohmann::json& pre_tokenizer) {
  std::vector<std::string> res;
  bool gpt2_regex = false;
  split_regexes(pre_tokenizer, &res, &gpt2_regex);
  if (res.empty()) return gpt2_regex ? "gpt-2" : "";
  if (gpt2_regex) return "";
  for (const char* name : {"llama-bpe", "qwen2", "deepseek-v3"}) {
    std::vector<std::string> known;
    bool unused = false;
    split_regexes(pre_tokenizer_for_llama_cpp_name(name), &known, &unused);
    if (res == known) return name;
  }
  return "";
}

}  // namespace tern::tokenizer
