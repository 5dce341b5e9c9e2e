// Added-token matching. A byte trie with a first-byte filter is enough here: vocabularies carry
// at most a few thousand added tokens, and almost every text position fails on its first byte.
#include "tokenizer/added_vocab.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer {

namespace {

// Last / first code point of a valid UTF-8 string (s non-empty).
uint32_t last_cp(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  uint32_t cp = 0xFFFD;
  utf8_decode(s, i, &cp);
  return cp;
}

uint32_t first_cp(std::string_view s) {
  uint32_t cp = 0xFFFD;
  utf8_decode(s, 0, &cp);
  return cp;
}

// Start of the run of whitespace that ends s (s.size() if none).
size_t whitespace_run_start(std::string_view s) {
  size_t i = s.size();
  while (i > 0) {
    size_t j = i - 1;
    while (j > 0 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
    uint32_t cp = 0;
    if (utf8_decode(s, j, &cp) == 0 || !is_unicode_whitespace(cp)) break;
    i = j;
  }
  return i;
}

// Length of the run of whitespace that starts s.
size_t whitespace_run_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = 0;
    int n = utf8_decode(s, i, &cp);
    if (n == 0 || !is_unicode_whitespace(cp)) break;
    i += size_t(n);
  }
  return i;
}

}  // namespace

void AddedVocab::Trie::insert(std::string_view s, int32_t token) {
  int32_t node = 0;
  for (unsigned char c : s) {
    int32_t child = -1;
    for (auto& [b, n] : nodes[size_t(node)].next)
      if (b == c) child = n;
    if (child < 0) {
      child = int32_t(nodes.size());
      nodes[size_t(node)].next.emplace_back(c, child);
      nodes.emplace_back();
    }
    node = child;
  }
  // Same content twice: the first definition wins.
  if (nodes[size_t(node)].token < 0) nodes[size_t(node)].token = token;
  first_byte[static_cast<unsigned char>(s[0])] = true;
}

std::pair<int32_t, size_t> AddedVocab::Trie::longest_at(std::string_view text, size_t i) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t node = 0;
  for (size_t k = i; k < text.size(); ++k) {
    int32_t child = -1;
    for (auto& [b, n] : nodes[size_t(node)].next)
      if (b == static_cast<unsigned char>(text[k])) child = n;
    if (child < 0) break;
    node = child;
    if (nodes[size_t(node)].token >= 0) best = {nodes[size_t(node)].token, k + 1 - i};
  }
  return best;
}

AddedVocab AddedVocab::from_json(const nlohmann::json& list, const std::string& where,
                                 const std::function<int32_t(const std::string&)>& model_id,
                                 size_t model_vocab_size) {
  AddedVocab v;
  if (list.is_null()) return v;
  if (!list.is_array()) fail(ErrorKind::format, where + ": expected an array");
  int64_t max_added = -1;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& t = list[i];
    std::string w = where + "[" + std::to_string(i) + "]";
    AddedToken a;
    if (!t.contains("content")) fail(ErrorKind::format, w + ": needs \"content\"");
    a.content = t["content"].get<std::string>();
    a.special = t.value("special", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.single_word = t.value("single_word", false);
    a.normalized = t.value("normalized", !a.special);
    if (!utf8_is_valid(a.content)) fail(ErrorKind::format, w + ".content is not valid UTF-8");
    if (a.content.empty()) continue;
    int32_t id;
    if (auto it = v.by_content_.find(a.content); it != v.by_content_.end()) {
      id = it->second;
    } else if (int32_t m = model_id(a.content); m >= 0) {
      id = m;
    } else {
      id = max_added < 0 ? int32_t(model_vocab_size)
           : (max_added >= int64_t(model_vocab_size) || model_vocab_size == 0)
               ? int32_t(max_added + 1)
               : int32_t(model_vocab_size);
    }
    max_added = std::max<int64_t>(max_added, id);
    a.id = id;
    v.by_content_[a.content] = id;
    if (auto it = v.by_id_.find(id); it != v.by_id_.end()) {
      v.tokens_[it->second] = a;  // a later definition of the same id replaces the earlier one
    } else {
      v.by_id_[id] = v.tokens_.size();
      v.tokens_.push_back(a);
    }
  }
  // Tries are built after ids settle, in definition order; the first token with a given content
  // wins.
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    const AddedToken& a = v.tokens_[i];
    (a.normalized ? v.normalized_ : v.raw_).insert(a.content, int32_t(i));
  }
  return v;
}

const AddedToken* AddedVocab::find_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

int32_t AddedVocab::find_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? -1 : it->second;
}

void AddedVocab::find_matches(std::string_view s, const Trie& trie,
                              std::vector<Segment>& out) const {
  size_t start_offset = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (!trie.first_byte[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    auto [index, len] = trie.longest_at(s, i);
    if (index < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = tokens_[size_t(index)];
    size_t start = i, stop = i + len;
    i = stop;  // the scan resumes after the raw match, as the reference iterator does
    if (tok.single_word) {
      bool start_ok = start == 0 || !is_word_char(last_cp(s.substr(0, start)));
      bool stop_ok = stop == s.size() || !is_word_char(first_cp(s.substr(stop)));
      if (!start_ok || !stop_ok) continue;
    }
    if (tok.lstrip) start = std::max(whitespace_run_start(s.substr(0, start)), start_offset);
    if (tok.rstrip) stop += whitespace_run_len(s.substr(stop));
    if (start_offset < start) out.push_back({-1, s.substr(start_offset, start - start_offset)});
    out.push_back({tok.id, s.substr(start, stop - start)});
    start_offset = stop;
  }
  if (start_offset < s.size()) out.push_back({-1, s.substr(start_offset)});
}

void AddedVocab::split(std::string_view text,
                       const std::function<std::string(std::string_view)>& normalize,
                       bool has_normalizer, std::deque<std::string>& storage,
                       std::vector<Segment>& out) const {
  thread_local std::vector<Segment> first;
  first.clear();
  find_matches(text, raw_, first);
  for (const Segment& seg : first) {
    if (seg.id >= 0) {
      out.push_back(seg);
      continue;
    }
    std::string_view piece = seg.text;
    if (has_normalizer) {
      storage.push_back(normalize(piece));
      piece = storage.back();
    }
    if (normalized_.nodes.size() > 1)
      find_matches(piece, normalized_, out);
    else if (!piece.empty())
      out.push_back({-1, piece});
  }
}

}  // namespace tern::tokenizer
