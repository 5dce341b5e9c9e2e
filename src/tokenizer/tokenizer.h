// Tokenizer: a Hugging Face tokenizer.json (+ optional tokenizer_config.json) loaded once and
// shared read-only by every thread. Owns encode/decode; chat templates live in chat_template.h,
// training in bpe_trainer.h.
//
// BOS semantics (docs/tokenizer.md): with follow_tokenizer_config (the default) tern does what the
// transformers library does — Llama-style tokenizer classes (LlamaTokenizerFast, the DeepSeek-V3/R1
// and R1-Distill-Qwen files) get a post-processor built from add_bos_token / add_eos_token, so
// encode("hi") starts with BOS. Without it, tern does what the Rust `tokenizers` library does with
// tokenizer.json alone (no BOS for DeepSeek-V3).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_config.h"

namespace tern::tokenizer {

struct LoadOptions {
  bool follow_tokenizer_config = true;
};

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json. Throws tern::Error
  // naming the file and field for anything malformed or unsupported.
  static Tokenizer load(const std::string& dir, const LoadOptions& opts = {});
  // Same from in-memory JSON texts; `config_json` may be empty. `name` labels errors.
  static Tokenizer from_json_text(std::string_view tokenizer_json, std::string_view config_json,
                                  const LoadOptions& opts = {},
                                  const std::string& name = "tokenizer.json");

  // Text -> ids. Invalid UTF-8 bytes are first replaced by U+FFFD (the reference only accepts
  // valid strings). add_special_tokens applies the post-processor (BOS/EOS).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Encodes many texts on the global thread pool (threads <= 0: all of it).
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts,
                                                 bool add_special_tokens = true) const;
  // Ids -> text. Unknown ids are skipped, as the reference decoder does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Vocabulary access. token strings are as written in tokenizer.json.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;
  size_t vocab_size() const;  // 1 + the largest id
  bool is_known(int32_t id) const;
  bool is_special(int32_t id) const;
  // Bytes this token contributes to decoded text (ByteLevel decoder semantics).
  const std::string& token_bytes(int32_t id) const;
  bool byte_level_decoder() const;

  // From tokenizer_config.json: token strings and ids (-1 if not set or unknown).
  const TokenizerConfig& config() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  // The ids the post-processor adds around a sequence (what add_special_tokens means here).
  const std::vector<int32_t>& special_prefix() const;
  const std::vector<int32_t>& special_suffix() const;

 private:
  static Tokenizer build(std::string_view tokenizer_json, std::string_view config_json,
                         const LoadOptions& opts, const std::string& name);
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace tern::tokenizer
