// Byte-level BPE training: counts pre-tokenized words of a corpus (DeepSeek-V3's pre-tokenizer
// by default), learns merges by pair frequency, and writes a tokenizer.json + tokenizer_config.json
// that the Hugging Face libraries load. Deterministic: ties are broken by token ids, and word
// counting is merged in a fixed order whatever the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tern::tokenizer {

struct BpeTrainOptions {
  size_t vocab_size = 32000;  // total, including special tokens and the 256 byte tokens
  int64_t min_frequency = 2;  // pairs seen fewer times are never merged
  std::string bos_token = "<｜begin▁of▁sentence｜>";
  std::string eos_token = "<｜end▁of▁sentence｜>";
  std::vector<std::string> special_tokens;  // extra specials, after BOS and EOS
  bool add_bos = true;  // tokenizer.json post-processor prepends BOS (both libraries agree)
  nlohmann::ordered_json pre_tokenizer;  // null: DeepSeek-V3's
  bool progress = false;
};

struct BpeTrainResult {
  nlohmann::ordered_json tokenizer_json;
  nlohmann::ordered_json tokenizer_config;
  size_t corpus_bytes = 0;
  size_t unique_words = 0;
  size_t merges = 0;
};

// The DeepSeek-V3 pre-tokenizer (spec §13.1) as tokenizer.json writes it.
nlohmann::ordered_json deepseek_v3_pre_tokenizer();

// Refuses options that would train something useless or unloadable (ErrorKind::request naming
// the CLI flag): empty or equal BOS/EOS, empty or repeated specials, min_frequency < 1, a
// vocabulary beyond 32-bit ids. train_bpe calls it; callers may call it early.
void validate(const BpeTrainOptions& opts);

// Trains on the given texts (each a document; the pre-tokenizer decides all splitting); an
// empty corpus is an ErrorKind::request.
BpeTrainResult train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& opts);
// Reads the files and trains; throws tern::Error naming an unreadable file.
BpeTrainResult train_bpe_files(const std::vector<std::string>& paths, const BpeTrainOptions& opts);
// Writes DIR/tokenizer.json and DIR/tokenizer_config.json (creating DIR).
void save_trained(const BpeTrainResult& r, const std::string& dir);

}  // namespace tern::tokenizer
