// Post-processor parsing. TemplateProcessing's "single" template is read as items before and
// after $A; a "pair"-only piece ($B) is rejected because tern never encodes sentence pairs.
#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/token_id.h"

namespace tern::tokenizer {

PostProcessor PostProcessor::from_json(const nlohmann::json& spec, const std::string& where) {
  PostProcessor p;
  if (!spec.is_null()) p.add_from_json(spec, where);
  return p;
}

PostProcessor PostProcessor::bos_eos(int32_t bos_id, int32_t eos_id) {
  PostProcessor p;
  if (bos_id >= 0) p.prefix_.push_back(bos_id);
  if (eos_id >= 0) p.suffix_.push_back(eos_id);
  return p;
}

void PostProcessor::add_from_json(const nlohmann::json& spec, const std::string& where) {
  std::string type = spec.at("type").get<std::string>();
  std::vector<int32_t> pre, post;
  if (type == "ByteLevel") {
    return;  // only trims offsets; ids are unchanged
  } else if (type == "Sequence") {
    const auto& list = spec.at("processors");
    for (size_t i = 0; i < list.size(); ++i)
      add_from_json(list[i], where + ".processors[" + std::to_string(i) + "]");
    return;
  } else if (type == "TemplateProcessing") {
    const auto& specials = spec.at("special_tokens");
    bool seen_a = false;
    const auto& single = spec.at("single");
    for (size_t i = 0; i < single.size(); ++i) {
      const auto& item = single[i];
      std::string w = where + ".single[" + std::to_string(i) + "]";
      if (item.contains("Sequence")) {
        if (item["Sequence"].at("id").get<std::string>() != "A")
          fail(ErrorKind::format, w + ": only sequence $A is supported in \"single\"");
        seen_a = true;
      } else if (item.contains("SpecialToken")) {
        std::string name = item["SpecialToken"].at("id").get<std::string>();
        if (!specials.contains(name))
          fail(ErrorKind::format, w + ": special token \"" + name + "\" is not in special_tokens");
        for (const auto& id : specials[name].at("ids"))
          (seen_a ? post : pre).push_back(token_id_from_json(id, w + ".ids"));
      } else {
        fail(ErrorKind::format, w + ": expected \"Sequence\" or \"SpecialToken\"");
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    pre.push_back(token_id_from_json(spec.at("cls").at(1), where + ".cls"));
    post.push_back(token_id_from_json(spec.at("sep").at(1), where + ".sep"));
  } else {
    fail(ErrorKind::format, where + ": unsupported post_processor type \"" + type + "\"");
  }
  // A later processor wraps the output of the earlier ones.
  prefix_.insert(prefix_.begin(), pre.begin(), pre.end());
  suffix_.insert(suffix_.end(), post.begin(), post.end());
}

void PostProcessor::apply(std::vector<int32_t>& ids) const {
  if (!prefix_.empty()) ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
}

}  // namespace tern::tokenizer
