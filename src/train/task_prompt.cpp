#include "train/task_prompt.h"

#include "infer/think_splitter.h"

namespace tern::train {

namespace {
constexpr const char* kInstruction =
    "\nThink step by step inside <think> </think>, then give only the final answer.";
}

TaskPrompt task_prompt(const tokenizer::Tokenizer& tok, const tokenizer::ChatTemplate* tmpl,
                       const std::string& question) {
  TaskPrompt p;
  const std::string text = question + kInstruction;
  if (!tmpl) {
    p.ids = tok.encode("User: " + text + "\nAssistant:", /*add_special_tokens=*/true);
  } else {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", text}});
    p.ids = tok.encode(tmpl->render(messages), /*add_special_tokens=*/false);
  }
  p.opens_reasoning = infer::prompt_opens_reasoning(tok.decode(p.ids));
  return p;
}

std::string response_text(const tokenizer::Tokenizer& tok, const TaskPrompt& p,
                          const std::vector<int32_t>& generated) {
  return (p.opens_reasoning ? "<think>\n" : "") +
         tok.decode(generated, /*skip_special_tokens=*/false);
}

}  // namespace tern::train
