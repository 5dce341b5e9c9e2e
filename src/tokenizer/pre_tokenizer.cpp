// Pre-tokenizer pipeline. Each step maps every current piece to zero or more sub-pieces exactly
// as the reference library's NormalizedString::split does (gaps and matches, then the behaviour
// folds them), so the pieces BPE sees are byte-identical.
#include "tokenizer/pre_tokenizer.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"

namespace tern::tokenizer {

namespace {

std::string escape_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& spec, const std::string& where) {
  PreTokenizer p;
  if (!spec.is_null()) p.add_from_json(spec, where);
  return p;
}

void PreTokenizer::add_from_json(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object() || !spec.contains("type"))
    fail(ErrorKind::format, where + ": expected an object with a \"type\"");
  std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    const auto& list = spec.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i)
      add_from_json(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
  } else if (type == "Split") {
    Step s;
    const auto& pat = spec.at("pattern");
    if (pat.contains("Regex"))
      s.regex = std::make_shared<Regex>(pat["Regex"].get<std::string>(), where + ".pattern.Regex");
    else if (pat.contains("String"))
      s.regex = std::make_shared<Regex>(escape_literal(pat["String"].get<std::string>()),
                                        where + ".pattern.String");
    else
      fail(ErrorKind::format, where + ".pattern: expected \"Regex\" or \"String\"");
    std::string b = spec.at("behavior").get<std::string>();
    if (b == "Removed")
      s.behavior = Behavior::removed;
    else if (b == "Isolated")
      s.behavior = Behavior::isolated;
    else if (b == "MergedWithPrevious")
      s.behavior = Behavior::merged_with_previous;
    else if (b == "MergedWithNext")
      s.behavior = Behavior::merged_with_next;
    else if (b == "Contiguous")
      s.behavior = Behavior::contiguous;
    else
      fail(ErrorKind::format, where + ".behavior: unknown value \"" + b + "\"");
    s.invert = spec.value("invert", false);
    steps_.push_back(std::move(s));
  } else if (type == "ByteLevel") {
    if (spec.value("add_prefix_space", false)) {
      Step s;
      s.kind = Step::Kind::prefix_space;
      steps_.push_back(std::move(s));
    }
    if (spec.value("use_regex", true)) {
      Step s;
      s.regex = std::make_shared<Regex>(kGpt2Pattern, where + " (ByteLevel use_regex)");
      steps_.push_back(std::move(s));
    }
    byte_level_ = true;
  } else if (type == "Digits") {
    Step s;
    bool individual = spec.value("individual_digits", false);
    s.regex = std::make_shared<Regex>(individual ? "\\p{N}" : "\\p{N}+", where);
    steps_.push_back(std::move(s));
  } else {
    fail(ErrorKind::format, where + ": unsupported pre_tokenizer type \"" + type + "\"");
  }
}

void PreTokenizer::split_one(const Step& step, std::string_view piece, PieceBuffer& buf,
                             std::vector<std::string_view>& out) {
  // 1. Cover the piece with (span, is_match) parts.
  buf.spans.clear();
  step.regex->find_all(piece, buf.spans);
  struct Part {
    size_t b, e;
    bool match;
  };
  thread_local std::vector<Part> parts;
  parts.clear();
  size_t prev = 0;
  for (auto [b, e] : buf.spans) {
    if (prev != b) parts.push_back({prev, b, false});
    parts.push_back({b, e, true});
    prev = e;
  }
  if (prev != piece.size()) parts.push_back({prev, piece.size(), false});
  if (step.invert)
    for (auto& p : parts) p.match = !p.match;

  // 2. Fold by behaviour; `removed` marks parts to drop.
  thread_local std::vector<Part> folded;
  folded.clear();
  bool prev_match = false;
  switch (step.behavior) {
    case Behavior::isolated:
      for (auto p : parts) folded.push_back({p.b, p.e, false});
      break;
    case Behavior::removed:
      folded = parts;
      break;
    case Behavior::contiguous:
      for (auto p : parts) {
        if (p.match == prev_match && !folded.empty())
          folded.back().e = p.e;
        else
          folded.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      break;
    case Behavior::merged_with_previous:
      for (auto p : parts) {
        if (p.match && !prev_match && !folded.empty())
          folded.back().e = p.e;
        else
          folded.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      break;
    case Behavior::merged_with_next:
      for (size_t i = parts.size(); i-- > 0;) {
        auto p = parts[i];
        if (p.match && !prev_match && !folded.empty())
          folded.back().b = p.b;
        else
          folded.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      std::reverse(folded.begin(), folded.end());
      break;
  }
  for (auto p : folded)
    if (!p.match && p.e > p.b) out.push_back(piece.substr(p.b, p.e - p.b));
}

void PreTokenizer::apply(PieceBuffer& buf) const {
  std::vector<std::string_view> next;
  for (const Step& step : steps_) {
    next.clear();
    next.reserve(buf.pieces.size() * 2);
    for (std::string_view piece : buf.pieces) {
      if (step.kind == Step::Kind::prefix_space) {
        if (!piece.empty() && piece[0] == ' ') {
          next.push_back(piece);
        } else {
          std::string& spaced = buf.storage.emplace_back(1, ' ');
          spaced.append(piece);
          next.push_back(spaced);
        }
        continue;
      }
      split_one(step, piece, buf, next);
    }
    buf.pieces.swap(next);
  }
}

}  // namespace tern::tokenizer
