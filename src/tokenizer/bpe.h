// The BPE model of tokenizer.json: vocabulary, ranked merges (both the "a b" and ["a","b"]
// forms), ignore_merges, byte_fallback, unk_token. Owns turning one pre-tokenized piece into ids.
// For byte-level vocabularies the tokens are stored as raw bytes (converted once at load), so the
// hot path never translates text into the GPT-2 alphabet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tern::tokenizer {

// Hash that lets unordered_map<std::string, ...> be searched with a string_view (no allocation).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Bpe {
 public:
  // `spec` is tokenizer.json's "model"; byte_level says whether a ByteLevel pre-tokenizer feeds it.
  static Bpe from_json(const nlohmann::json& spec, bool byte_level, const std::string& where);

  // Appends the ids of one piece (raw bytes; valid UTF-8 when not byte-level). Thread-safe.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  // Vocabulary as written in the file (GPT-2 alphabet for byte-level models).
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }
  int32_t lookup_token(std::string_view token) const;  // -1 if absent (file alphabet)
  bool byte_level() const { return byte_level_; }
  size_t vocab_entries() const { return file_vocab_.size(); }
  size_t merge_count() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  void initial_symbols(std::string_view piece, std::vector<int32_t>& syms) const;
  bool all_bytes_have_fallback(std::string_view ch) const;
  void merge_all(std::vector<int32_t>& syms) const;

  std::vector<std::string> id_to_token_;
  StringMap file_vocab_;  // file alphabet
  StringMap vocab_;       // raw bytes (byte-level) or text
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];           // single-byte tokens, -1 if absent
  int32_t byte_fallback_ids_[256];  // "<0xAB>" tokens, -1 if absent
  int32_t unk_id_ = -1;
  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  uint64_t instance_ = 0;  // keys the per-thread word cache
};

}  // namespace tern::tokenizer
