// Chat-template rendering: builds the variables transformers passes to the template and hands
// them to the Jinja interpreter.
#include "tokenizer/chat_template.h"

#include "core/error.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"
#include "tokenizer/tokenizer.h"

namespace tern::tokenizer {

struct ChatTemplate::Impl {
  jinja::Body body;
  std::string bos, eos;
};

ChatTemplate::ChatTemplate(const std::string& source) : impl_(std::make_unique<Impl>()) {
  impl_->body = jinja::parse(source);
}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

ChatTemplate ChatTemplate::from_tokenizer(const Tokenizer& tok, const std::string& name) {
  const auto& templates = tok.config().chat_templates;
  auto it = templates.find(name);
  if (it == templates.end())
    fail(ErrorKind::config, "tokenizer_config.json: no chat_template" +
                                (name == "default" ? std::string() : " named \"" + name + "\""));
  ChatTemplate t(it->second);
  t.set_special_tokens(tok.config().bos_token, tok.config().eos_token);
  return t;
}

void ChatTemplate::set_special_tokens(std::string bos, std::string eos) {
  impl_->bos = std::move(bos);
  impl_->eos = std::move(eos);
}

nlohmann::ordered_json checked_messages(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) fail(ErrorKind::request, "chat: messages must be a JSON array");
  nlohmann::ordered_json out = messages;
  for (size_t i = 0; i < out.size(); ++i) {
    nlohmann::ordered_json& m = out[i];
    const std::string where = "chat: message " + std::to_string(i + 1);
    if (!m.is_object()) fail(ErrorKind::request, where + " must be a JSON object, got " + m.dump());
    if (!m.contains("role") || !m["role"].is_string())
      fail(ErrorKind::request, where + " needs a string 'role' (system, user, assistant, tool)");
    if (m.contains("content")) {
      const auto& c = m["content"];
      if (!c.is_string() && !c.is_array() && !c.is_null())
        fail(ErrorKind::request,
             where + ": 'content' must be a string, a list of parts or null, got " + c.dump());
    } else if (m.contains("tool_calls")) {
      m["content"] = nullptr;  // OpenAI's schema: omitted means null; templates test `is none`
    } else {
      fail(ErrorKind::request, where + " (" + m["role"].get<std::string>() +
                                   ") has no 'content' (a string, a list of parts, or null "
                                   "with tool_calls)");
    }
  }
  return out;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages,
                                 const ChatOptions& opts) const {
  // The variables transformers' apply_chat_template passes: tools/documents are always defined
  // (None when absent), then the special-token strings, then caller extras.
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = checked_messages(messages);
  ctx["tools"] = opts.tools;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = opts.add_generation_prompt;
  ctx["bos_token"] = impl_->bos;
  ctx["eos_token"] = impl_->eos;
  for (auto it = opts.extra.begin(); it != opts.extra.end(); ++it) ctx[it.key()] = it.value();
  return render_context(ctx);
}

std::string ChatTemplate::render_context(const nlohmann::ordered_json& context) const {
  return jinja::render(impl_->body, jinja::Value::from_json(context));
}

}  // namespace tern::tokenizer
