// How a verifiable task's question is put to the model, the same for `tern eval --task` and
// `tern grpo` (a policy is scored as it was trained): the question with R1's instruction to
// reason inside <think> </think> and then answer, through the model's chat template (or a plain
// "User: … Assistant:" frame for a tokenizer without one).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tern::train {

struct TaskPrompt {
  std::vector<int32_t> ids;
  // The template opened the reasoning block itself (R1's "<think>\n" after the assistant
  // tag): the response starts inside it, and the format check needs it put back in front.
  bool opens_reasoning = false;
};

// tmpl may be null (no chat template).
TaskPrompt task_prompt(const tokenizer::Tokenizer& tok, const tokenizer::ChatTemplate* tmpl,
                       const std::string& question);

// The response text rewards read: special tokens kept (<think> may be one), with "<think>\n"
// in front when the prompt opened the block.
std::string response_text(const tokenizer::Tokenizer& tok, const TaskPrompt& p,
                          const std::vector<int32_t>& generated);

}  // namespace tern::train
