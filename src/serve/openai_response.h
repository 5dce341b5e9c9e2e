// The JSON tern answers with, in OpenAI's shapes (and DeepSeek's additions: reasoning_content,
// prompt_cache_hit_tokens / prompt_cache_miss_tokens): whole chat and text completions, their
// streamed chunks, logprobs, usage and the model list. Owns only the shapes; the values come
// from the completion handler.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/generation.h"

namespace tern::tokenizer {
class Tokenizer;
}

namespace tern::serve {

using Json = nlohmann::ordered_json;

// Serialises without ever throwing on invalid UTF-8 (a token's bytes may be part of a
// character): invalid bytes become U+FFFD.
std::string to_text(const Json& j);

struct Usage {
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  std::string served_by = "local";
};
Json usage_json(const Usage& u);

// Chat logprobs entries ({"token", "logprob", "bytes", "top_logprobs"}) for tokens.
Json chat_logprobs(const tokenizer::Tokenizer& tok, const std::vector<TokenEvent>& tokens);
// Legacy completions logprobs ({"tokens", "token_logprobs", "top_logprobs", "text_offset"}).
Json completion_logprobs(const tokenizer::Tokenizer& tok, const std::vector<TokenEvent>& tokens,
                         int64_t text_offset);

// The envelope shared by whole responses and chunks.
Json envelope(const std::string& id, const char* object, int64_t created, const std::string& model);

Json model_json(const std::string& id, int64_t created);

}  // namespace tern::serve
