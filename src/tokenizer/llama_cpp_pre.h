// llama.cpp's token types (`tokenizer.ggml.token_type`, llama_token_type) and its names for the
// pre-tokenizers of the byte-level BPE tokenizers tern writes to and
// reads from GGUF (`tokenizer.ggml.pre`), and the tokenizer.json `pre_tokenizer` each stands for.
// One table for both directions (gguf_vocab.cpp writes names, gguf_tokenizer.cpp reads them).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace tern::tokenizer {

enum LlamaCppTokenType : int32_t {
  kTokenNormal = 1,
  kTokenControl = 3,      // special added tokens
  kTokenUserDefined = 4,  // other added tokens
  kTokenUnused = 5,       // padding rows
};

// The pre_tokenizer JSON llama.cpp's `name` stands for: "deepseek-v3", "llama-bpe" (and
// "llama3"), "qwen2" and "deepseek-r1-qwen" (Qwen2's regex), "gpt-2" and "default" (GPT-2's
// ByteLevel regex). Empty (null) for names tern does not know.
nlohmann::json pre_tokenizer_for_llama_cpp_name(const std::string& name);

// The llama.cpp name of a tokenizer.json pre_tokenizer ("deepseek-v3", "llama-bpe", "qwen2",
// "gpt-2"), or "" when it is none of those.
std::string llama_cpp_pre_name(const nlohmann::json& pre_tokenizer);

}  // namespace tern::tokenizer
