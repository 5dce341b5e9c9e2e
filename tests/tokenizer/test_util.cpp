// Fixture access for the tokenizer tests.
#include "tests/tokenizer/test_util.h"

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "core/error.h"

namespace tern::tokenizer::test {

std::string model_dir(const std::string& name) {
  return std::string(TERN_TOK_DATA) + "/" + name;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::io, path + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::io, path + ": cannot open");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

namespace {

std::pair<std::string, std::string> distill_qwen_json() {
  auto tok = nlohmann::json::parse(read_text(model_dir("qwen3") + "/tokenizer.json"));
  std::map<int, std::string> names = {{151643, "<｜end▁of▁sentence｜>"},
                                      {151644, "<｜User｜>"},
                                      {151645, "<｜Assistant｜>"},
                                      {151646, "<｜begin▁of▁sentence｜>"},
                                      {151647, "<|EOT|>"},
                                      {151648, "<think>"},
                                      {151649, "</think>"}};
  for (auto& a : tok["added_tokens"]) {
    int id = a["id"].get<int>();
    if (names.count(id)) {
      a["content"] = names[id];
      a["special"] = id == 151643 || id == 151646;
    }
  }
  nlohmann::json bos = {{"SpecialToken", {{"id", "<｜begin▁of▁sentence｜>"}, {"type_id", 0}}}};
  tok["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                           {"pair", nlohmann::json::array()},
                           {"special_tokens",
                            {{"<｜begin▁of▁sentence｜>",
                              {{"id", "<｜begin▁of▁sentence｜>"},
                               {"ids", {151646}},
                               {"tokens", {"<｜begin▁of▁sentence｜>"}}}}}}};
  // The R1-Distill-Qwen tokenizer_config.json (LlamaTokenizerFast, add_bos_token true).
  nlohmann::json cfg = {
      {"add_bos_token", true},
      {"add_eos_token", false},
      {"bos_token", "<｜begin▁of▁sentence｜>"},
      {"eos_token", "<｜end▁of▁sentence｜>"},
      {"pad_token", "<｜end▁of▁sentence｜>"},
      {"tokenizer_class", "LlamaTokenizerFast"},
      {"chat_template",
       read_text(std::string(TERN_TEST_DATA) + "/tokenizer/data/templates/r1_distill_qwen.jinja")}};
  return {tok.dump(), cfg.dump()};
}

// synth_* tokenizers: a committed model with fields replaced from data/derived.json.
std::pair<std::string, std::string> derived_json(const std::string& name) {
  auto all = nlohmann::json::parse(
      read_text(std::string(TERN_TEST_DATA) + "/tokenizer/data/derived.json"));
  const auto& d = all.at(name);
  if (d.contains("full")) return {d["full"].dump(), ""};
  std::string base = d.at("base").get<std::string>();
  auto tok = nlohmann::json::parse(read_text(model_dir(base) + "/tokenizer.json"));
  tok["normalizer"] = d.at("normalizer");
  tok["pre_tokenizer"] = d.at("pre_tokenizer");
  tok["post_processor"] = d.at("post_processor");
  for (const auto& a : d.at("added")) tok["added_tokens"].push_back(a);
  return {tok.dump(), read_text(model_dir(base) + "/tokenizer_config.json")};
}

}  // namespace

const Tokenizer& model(const std::string& name, bool follow_config) {
  static std::mutex mu;
  static std::map<std::pair<std::string, bool>, Tokenizer> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(name, follow_config);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  LoadOptions opts{follow_config};
  auto build = [&]() {
    if (name == "r1_distill_qwen" || name.rfind("synth_", 0) == 0) {
      auto [tok, cfg] = name == "r1_distill_qwen" ? distill_qwen_json() : derived_json(name);
      return Tokenizer::from_json_text(tok, cfg, opts, name + "/tokenizer.json");
    }
    return Tokenizer::load(model_dir(name), opts);
  };
  Tokenizer t = build();
  return cache.emplace(key, std::move(t)).first->second;
}

}  // namespace tern::tokenizer::test
