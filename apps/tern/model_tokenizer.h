// The tokenizer of a model path as every command finds it: tokenizer.json (+ tokenizer_config)
// in the model's folder, or for a .gguf file its own `tokenizer.ggml.*` keys
// (tokenizer/gguf_tokenizer.h). Owns only that choice.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace tern::app {

// `path` as resolve_model_path() accepts it. A GGUF without tokenizer keys is ErrorKind::request
// asking for --tokenizer DIR.
tokenizer::Tokenizer load_model_tokenizer(const std::string& path,
                                          const tokenizer::LoadOptions& opts = {});

}  // namespace tern::app
