// Added tokens (tokenizer.json "added_tokens"): matched inside raw text before normalisation and
// pre-tokenisation, leftmost-longest, with the lstrip / rstrip / single_word / normalized rules of
// the reference library. Owns the token table and the two match tries (raw and normalized text);
// does not own BPE or the normalizer, which it only calls through the splitting callback.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tern::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// One piece of input after added-token splitting: an added token (id >= 0) or plain text.
struct Segment {
  int32_t id;
  std::string_view text;
};

class AddedVocab {
 public:
  // Ids are assigned as the reference library does when it loads a file: a token already in the
  // model vocabulary keeps the model's id, any other gets the next id after the model vocabulary
  // and earlier added tokens. (The "id" written in the file is not authoritative there either.)
  static AddedVocab from_json(const nlohmann::json& list, const std::string& where,
                              const std::function<int32_t(const std::string&)>& model_id,
                              size_t model_vocab_size);

  // Splits `text` into added tokens and plain segments. Plain segments are passed through
  // `normalize` (which may return its input) before the normalized-token pass; strings it creates
  // are kept in `storage`.
  void split(std::string_view text, const std::function<std::string(std::string_view)>& normalize,
             bool has_normalizer, std::deque<std::string>& storage,
             std::vector<Segment>& out) const;

  const AddedToken* find_id(int32_t id) const;
  int32_t find_content(std::string_view content) const;  // -1 if absent
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Trie {
    struct Node {
      std::vector<std::pair<uint8_t, int32_t>> next;
      int32_t token = -1;  // index into tokens_
    };
    std::vector<Node> nodes{Node{}};
    bool first_byte[256] = {};
    void insert(std::string_view s, int32_t token);
    // Longest token starting at text[i], as (token index, length); token -1 if none.
    std::pair<int32_t, size_t> longest_at(std::string_view text, size_t i) const;
  };
  void find_matches(std::string_view text, const Trie& trie, std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;  // one per distinct id, in order of definition
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, int32_t> by_content_;
  Trie raw_, normalized_;
};

}  // namespace tern::tokenizer
