// The OpenAI request bodies tern serves — /v1/chat/completions and /v1/completions — parsed and
// validated into one struct. Owns the schema (types, ranges, defaults, which fields exist);
// does not tokenize or render templates (the server does, with the model's tokenizer). Every
// refusal is an ApiError 400 naming the field, so clients see what to fix. Unknown fields are
// ignored, as OpenAI's own SDKs send fields a server may not know.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "infer/json_schema.h"
#include "infer/sampling_params.h"

namespace tern::serve {

enum class Endpoint { chat, completions };

struct ApiRequest {
  Endpoint endpoint = Endpoint::chat;
  std::string model;                // may be empty (the served model)
  nlohmann::ordered_json messages;  // chat: checked by tokenizer::checked_messages later
  std::string prompt;               // completions, given as text
  std::vector<int32_t> prompt_ids;  // completions, given as token ids
  bool stream = false, include_usage = false;
  int64_t max_tokens = -1;         // -1: until a stop or the context's end
  std::vector<std::string> stop;   // at most 4 strings, none empty
  infer::SamplingParams sampling;  // OpenAI defaults: temperature 1, top_p 1
  bool seeded = false;             // "seed" was given
  int32_t n = 1;                   // choices, 1..16
  bool logprobs = false;
  int32_t top_logprobs = 0;      // 0..20, needs logprobs
  bool echo = false;             // completions: prepend the prompt
  nlohmann::ordered_json tools;  // null when absent
  nlohmann::ordered_json tool_choice;
  bool is_private = false;  // metadata.private
  // response_format json_object / json_schema: what the output must be; null for text.
  std::shared_ptr<const infer::JsonSchema> json_schema;
  std::string user;
};

// Parses a request body. ApiError 400 for malformed JSON, a body that is not an object, a
// field of the wrong type or out of range, missing messages/prompt, and features this server
// does not offer (named as such).
ApiRequest parse_request(const std::string& body, Endpoint endpoint);

}  // namespace tern::serve
