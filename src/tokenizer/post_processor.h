// Post-processors from tokenizer.json (ByteLevel, TemplateProcessing, Roberta/Bert, Sequence)
// reduced to what they do to the ids of one sequence: a prefix and a suffix of special-token ids.
// Owns nothing else; offsets and pair sequences are out of scope for an inference engine.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tern::tokenizer {

class PostProcessor {
 public:
  static PostProcessor from_json(const nlohmann::json& spec, const std::string& where);
  // The processor transformers builds for Llama-style tokenizers from add_bos/add_eos_token.
  static PostProcessor bos_eos(int32_t bos_id, int32_t eos_id);

  // Wraps one sequence's ids (only called when special tokens are requested).
  void apply(std::vector<int32_t>& ids) const;
  const std::vector<int32_t>& prefix() const { return prefix_; }
  const std::vector<int32_t>& suffix() const { return suffix_; }

 private:
  void add_from_json(const nlohmann::json& spec, const std::string& where);
  std::vector<int32_t> prefix_, suffix_;
};

}  // namespace tern::tokenizer
