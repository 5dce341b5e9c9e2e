// Completion: one /v1/chat/completions or /v1/completions request from parsed body to reply —
// renders the chat template, tokenizes, submits one Generation per choice, and turns their
// tokens into either one JSON response or a stream of SSE events. Runs on the HTTP thread that
// took the request; the engine thread does the forward passes. Owns the per-request text state
// (ChoiceText per choice, stop strings, logprobs) and cancels its generations when the client
// goes away or a stop string ends a choice.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "infer/json_constraint.h"
#include "serve/choice_text.h"
#include "serve/generation.h"
#include "serve/metrics.h"
#include "serve/openai_request.h"
#include "serve/openai_response.h"

namespace tern::tokenizer {
class Tokenizer;
class ChatTemplate;
}  // namespace tern::tokenizer

namespace tern::serve {

// What the API layer needs of the loaded model.
struct ServedModel {
  std::string id;
  int64_t created = 0;
  const tokenizer::Tokenizer* tok = nullptr;
  const tokenizer::ChatTemplate* tmpl = nullptr;  // null: the model has no chat template
  std::vector<int32_t> stop_ids;                  // EOS and end-of-turn tokens
  // The vocabulary as bytes, for JSON mode (json_mode.h); null: JSON mode is refused.
  std::shared_ptr<const infer::ConstraintVocab> constraint_vocab;
  Backend* backend = nullptr;
};

// Writes bytes to the client; false once it has gone away.
using Writer = std::function<bool(const std::string&)>;

class Completion {
 public:
  // Tokenizes and submits. ApiError for a refused request (unknown model, bad messages, a
  // prompt that does not fit, a full queue).
  Completion(const ServedModel& m, Metrics& metrics, ApiRequest r);
  ~Completion();  // cancels generations still running

  // Streams SSE events ("data: {...}\n\n" ... "data: [DONE]\n\n"). Returns false when the
  // client went away (generations cancelled).
  bool stream(const Writer& write);
  // Waits for every choice and writes the whole response; while waiting, writes a space now and
  // then so a departed client is noticed (JSON allows leading whitespace). False as above.
  bool respond(const Writer& write);

  const std::string& id() const { return id_; }
  int64_t prompt_tokens() const { return int64_t(prompt_.size()); }
  int64_t generated_tokens() const;

 private:
  struct Choice;
  // Drains every choice once, waiting up to `wait` for the first event. Calls on_delta for each
  // choice with new text or logprobs. Returns true when every choice is finished.
  bool pump(std::chrono::milliseconds wait,
            const std::function<void(Choice&, const TextDelta&, const std::vector<TokenEvent>&)>&
                on_delta);
  std::string finish_reason(const Choice& c) const;
  Usage usage() const;

  const ServedModel& m_;
  Metrics& metrics_;
  ApiRequest r_;
  std::string id_;
  int64_t created_;
  std::string rendered_;  // the rendered chat prompt (or the completion prompt text)
  std::vector<int32_t> prompt_;
  std::vector<std::unique_ptr<Choice>> choices_;
};

}  // namespace tern::serve
