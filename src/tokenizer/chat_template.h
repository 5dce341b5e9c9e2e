// Chat templates: render a conversation with the model's own Jinja template (tokenizer_config.json
// "chat_template") exactly as transformers' apply_chat_template does. Owns the context the
// template sees (messages, tools, add_generation_prompt, bos_token, eos_token, extra variables);
// the Jinja engine itself is in jinja/.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace tern::tokenizer {

class Tokenizer;

struct ChatOptions {
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools;  // tool definitions; null renders as None
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // e.g. enable_thinking
};

// Checks a conversation before any template sees it, so mistakes are reported in the caller's
// terms rather than as a template's internal error: an array of objects, each with a string
// "role" and "content" that is a string, a list of parts or null (transformers' schema). A
// message with tool_calls may omit content (OpenAI's schema), which is passed on as null.
// Returns the messages as the template should see them; ErrorKind::request naming the message.
nlohmann::ordered_json checked_messages(const nlohmann::ordered_json& messages);

class ChatTemplate {
 public:
  // Parses once; throws tern::Error with the template line and column on unsupported syntax.
  explicit ChatTemplate(const std::string& source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // The tokenizer's template `name` ("default" for a plain string) with its bos/eos tokens.
  static ChatTemplate from_tokenizer(const Tokenizer& tok, const std::string& name = "default");

  // `messages`: [{"role": ..., "content": ..., "tool_calls": [...]}, ...] (any JSON the template
  // reads). Keys keep their order, which tojson output depends on.
  std::string render(const nlohmann::ordered_json& messages, const ChatOptions& opts = {}) const;
  // Renders with exactly the given variables (used by the golden tests).
  std::string render_context(const nlohmann::ordered_json& context) const;

  void set_special_tokens(std::string bos, std::string eos);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::tokenizer
