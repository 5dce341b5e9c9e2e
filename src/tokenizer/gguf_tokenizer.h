// A Tokenizer from a GGUF file's own `tokenizer.ggml.*` keys (byte-level BPE, model "gpt2"), so
// a downloaded GGUF runs without the original model folder. Owns: rebuilding the tokenizer.json
// and tokenizer_config.json those keys stand for (vocabulary, merges, control and user-defined
// tokens as added tokens, the pre-tokenizer named by `tokenizer.ggml.pre`, BOS when
// `add_bos_token`, the chat template). The inverse of gguf_vocab.h.
#pragma once

#include <string>

#include "formats/gguf_value.h"
#include "tokenizer/tokenizer.h"

namespace tern::tokenizer {

// Whether the metadata carries a vocabulary at all.
bool gguf_has_tokenizer(const formats::GgufMetadata& md);

// Fails (ErrorKind::format) naming `source` and the key for what tern cannot read: another
// tokenizer model (SentencePiece "llama", ...), an unknown pre-tokenizer name, malformed arrays.
Tokenizer tokenizer_from_gguf(const formats::GgufMetadata& md, const std::string& source);

}  // namespace tern::tokenizer
