#include "serve/choice_text.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace tern::serve {

ChoiceText::ChoiceText(const tokenizer::Tokenizer& tok, std::vector<std::string> stops,
                       bool split_reasoning, bool starts_in_reasoning, bool keep_special)
    : decoder_(tok, /*skip_special_tokens=*/!keep_special),
      stops_(std::move(stops)),
      split_(split_reasoning),
      splitter_(split_reasoning && starts_in_reasoning) {}

TextDelta ChoiceText::release(size_t end) {
  TextDelta d;
  if (end <= released_) return d;
  // A model may emit bytes that are no UTF-8 (a random or badly tuned one does): each piece is
  // made valid as it is released, so the streamed deltas and the whole text stay identical.
  const std::string piece =
      tokenizer::utf8_lossy(std::string_view(raw_).substr(released_, end - released_));
  released_ = end;
  if (!split_) {
    d.content = std::string(piece);
  } else {
    for (infer::ThinkSegment& s : splitter_.push(piece))
      (s.reasoning ? d.reasoning : d.content) += s.text;
  }
  content_ += d.content;
  reasoning_ += d.reasoning;
  return d;
}

TextDelta ChoiceText::push(int32_t id) {
  if (stopped_ || finished_) return {};
  raw_ += decoder_.push(id);
  // The earliest complete stop string ends the text just before it.
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, raw_.find(s, released_));
  if (cut != std::string::npos) {
    stopped_ = true;
    TextDelta d = release(cut);
    TextDelta rest = finish();
    d.content += rest.content;
    d.reasoning += rest.reasoning;
    return d;
  }
  // Hold back the longest tail that could still grow into a stop string.
  size_t hold = 0;
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - 1, raw_.size() - released_); k > hold; --k)
      if (raw_.compare(raw_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return release(raw_.size() - hold);
}

TextDelta ChoiceText::finish() {
  if (finished_) return {};
  finished_ = true;
  if (!stopped_) raw_ += decoder_.finish();
  TextDelta d = release(stopped_ ? released_ : raw_.size());
  if (split_)
    for (infer::ThinkSegment& s : splitter_.finish()) {
      (s.reasoning ? d.reasoning : d.content) += s.text;
      (s.reasoning ? reasoning_ : content_) += s.text;
    }
  return d;
}

}  // namespace tern::serve
