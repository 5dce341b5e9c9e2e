// Tag scan for ThinkSplitter: a two-state machine over a small held buffer. Tags are matched
// literally (no whitespace trimming) so the answer text is exactly what the model produced.
#include "infer/think_splitter.h"

#include <algorithm>

namespace tern::infer {
namespace {

constexpr std::string_view kOpen = "<think>", kClose = "</think>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`: those bytes may yet
// become the tag, so they cannot be released.
size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n)
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

}  // namespace

std::vector<ThinkSegment> ThinkSplitter::push(std::string_view piece) {
  std::vector<ThinkSegment> out;
  const auto emit = [&](std::string_view text) {
    if (text.empty()) return;
    if (!out.empty() && out.back().reasoning == thinking_)
      out.back().text.append(text);
    else
      out.push_back({thinking_, std::string(text)});
  };
  std::string text = std::move(held_);
  held_.clear();
  text.append(piece);
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::string_view tag = thinking_ ? kClose : kOpen;
    const size_t at = rest.find(tag);
    if (at == std::string_view::npos) {
      const size_t keep = partial_tag_suffix(rest, tag);
      emit(rest.substr(0, rest.size() - keep));
      held_.assign(rest.substr(rest.size() - keep));
      break;
    }
    emit(rest.substr(0, at));
    thinking_ = !thinking_;
    rest.remove_prefix(at + tag.size());
  }
  return out;
}

std::vector<ThinkSegment> ThinkSplitter::finish() {
  std::vector<ThinkSegment> out;
  if (!held_.empty()) out.push_back({thinking_, std::move(held_)});
  held_.clear();
  return out;
}

bool prompt_opens_reasoning(std::string_view prompt) {
  const size_t end = prompt.find_last_not_of(" \t\r\n");
  if (end == std::string_view::npos) return false;
  return prompt.substr(0, end + 1).ends_with(kOpen);
}

}  // namespace tern::infer
