// ChoiceText: one choice's generated tokens turned into the text a client sees, as it streams —
// decoded without splitting UTF-8, cut at the first stop string (text that could still begin
// one is held back until it cannot), and for chat split into reasoning_content and content at
// <think>…</think> as DeepSeek's API does. Owns only that text pipeline; the HTTP side decides
// how deltas are framed (SSE chunks or one final message).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "infer/think_splitter.h"
#include "tokenizer/decoder.h"

namespace tern::serve {

struct TextDelta {
  std::string content, reasoning;
  bool empty() const { return content.empty() && reasoning.empty(); }
};

class ChoiceText {
 public:
  // split_reasoning: route <think> blocks to reasoning; starts_in_reasoning: the prompt already
  // opened one (R1's template ends with "<think>\n"). keep_special: special tokens stay in the
  // text (a tool-call parser needs DeepSeek's tool-call tokens).
  ChoiceText(const tokenizer::Tokenizer& tok, std::vector<std::string> stops, bool split_reasoning,
             bool starts_in_reasoning, bool keep_special = false);

  // The text token `id` makes final. After a stop string is seen, stopped() is true and later
  // tokens add nothing.
  TextDelta push(int32_t id);
  // Everything still held (the generation ended).
  TextDelta finish();
  bool stopped() const { return stopped_; }

  // The whole text so far, per channel.
  const std::string& content() const { return content_; }
  const std::string& reasoning() const { return reasoning_; }

 private:
  TextDelta release(size_t end);

  tokenizer::StreamDecoder decoder_;
  std::vector<std::string> stops_;
  bool split_;
  infer::ThinkSplitter splitter_;
  std::string raw_;      // decoded text, stop strings not yet cut
  size_t released_ = 0;  // raw_ bytes passed on
  bool stopped_ = false, finished_ = false;
  std::string content_, reasoning_;
};

}  // namespace tern::serve
