// A Hugging Face tokenizer as llama.cpp's `tokenizer.ggml.*` GGUF keys (the inverse of what
// llama.cpp's converter reads): byte-level BPE vocabulary in id order with token types, merges,
// the pre-tokenizer's llama.cpp name, BOS/EOS and the chat template. Owns: that mapping.
// Does not own: writing the file (formats/gguf_writer.h) or the model's keys (model/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/gguf_value.h"

namespace tern::tokenizer {

struct GgufVocab {
  formats::GgufMetadata keys;
  std::vector<std::string> notes;  // what the user should know (unrecognised pre-tokenizer...)
};

// Reads DIR/tokenizer.json (+ tokenizer_config.json). The vocabulary is padded with unused
// "[PAD<id>]" tokens up to model_vocab (checkpoints often have more embedding rows than
// tokens). `pre` names llama.cpp's pre-tokenizer; empty recognises it from the regexes.
// Fails (ErrorKind::format) naming the file for a tokenizer GGUF cannot carry (not BPE,
// byte-fallback BPE) or one with more tokens than the model has rows.
GgufVocab gguf_vocab_from_dir(const std::string& dir, int64_t model_vocab, const std::string& pre);

}  // namespace tern::tokenizer
