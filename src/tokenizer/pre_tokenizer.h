// Pre-tokenizers from tokenizer.json: Sequence, Split (regex or literal, all five behaviours,
// invert), ByteLevel (add_prefix_space, use_regex) and Digits. A pre-tokenizer turns one text
// piece into smaller pieces; BPE then runs on each piece independently. Does not own the
// byte-to-character mapping: pieces stay raw bytes and the BPE vocabulary is stored in bytes.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/regex.h"

namespace tern::tokenizer {

// Pieces are views into the input or into `storage` (for text the pre-tokenizer had to create,
// such as an added prefix space); std::deque keeps those strings at fixed addresses.
struct PieceBuffer {
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;
  std::vector<std::pair<size_t, size_t>> spans;  // scratch for regex matches
};

class PreTokenizer {
 public:
  static PreTokenizer from_json(const nlohmann::json& spec, const std::string& where);

  // Splits buf.pieces in place. Pieces must be valid UTF-8.
  void apply(PieceBuffer& buf) const;

  // True if a ByteLevel step exists (so the model works on bytes, not characters).
  bool byte_level() const { return byte_level_; }

 private:
  enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
  struct Step {
    enum class Kind { split, prefix_space } kind = Kind::split;
    std::shared_ptr<Regex> regex;
    Behavior behavior = Behavior::isolated;
    bool invert = false;
  };
  void add_from_json(const nlohmann::json& spec, const std::string& where);
  static void split_one(const Step& step, std::string_view piece, PieceBuffer& buf,
                        std::vector<std::string_view>& out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace tern::tokenizer
