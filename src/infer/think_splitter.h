// Separates a model's reasoning from its answer in streamed text: what lies between <think>
// and </think> (DeepSeek-R1, QwQ, Qwen3) is reasoning, the rest is answer. Owns only the tag
// scan; where each part is shown is the caller's. Pieces arrive as decoded, so a tag may be
// split across them: the bytes that could still begin one are held back until they cannot.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tern::infer {

// A run of text from one channel. Segments come in stream order and are never empty.
struct ThinkSegment {
  bool reasoning = false;
  std::string text;
};

class ThinkSplitter {
 public:
  // `in_reasoning`: the prompt already opened the block (R1's template ends with "<think>\n").
  explicit ThinkSplitter(bool in_reasoning = false) : thinking_(in_reasoning) {}

  // The text of `piece` that is final; a trailing partial tag is held for the next call.
  std::vector<ThinkSegment> push(std::string_view piece);
  // Releases held bytes as plain text of the current channel (the stream ended mid-tag).
  std::vector<ThinkSegment> finish();

  bool in_reasoning() const { return thinking_; }

 private:
  bool thinking_;
  std::string held_;
};

// Whether a rendered prompt leaves the model inside a reasoning block (ends in "<think>" plus
// optional whitespace), so generation starts with reasoning and no opening tag.
bool prompt_opens_reasoning(std::string_view prompt);

}  // namespace tern::infer
