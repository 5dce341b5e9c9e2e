// BPE encoding. Merges are applied lowest rank first, leftmost first among equal ranks, which is
// what the reference library's priority queue does; a binary heap over a linked list of symbols
// keeps a megabyte-long piece O(n log n) instead of O(n^2).
#include "tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/token_id.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer {

namespace {

std::pair<std::string, std::string> parse_merge(const nlohmann::json& m, const std::string& where) {
  if (m.is_string()) {
    const auto& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
      fail(ErrorKind::format,
           where + ": merge \"" + s + "\" is not two tokens separated by a space");
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  fail(ErrorKind::format, where + ": merge must be \"a b\" or [\"a\", \"b\"]");
}

}  // namespace

Bpe Bpe::from_json(const nlohmann::json& spec, bool byte_level, const std::string& where) {
  if (spec.value("type", std::string("BPE")) != "BPE")
    fail(ErrorKind::format, where + ".type: only \"BPE\" models are supported, got \"" +
                                spec["type"].get<std::string>() + "\"");
  Bpe m;
  static std::atomic<uint64_t> instances{0};
  m.instance_ = ++instances;
  m.byte_level_ = byte_level;
  auto opt_str = [&](const char* key) {
    return spec.contains(key) && spec[key].is_string() ? spec[key].get<std::string>()
                                                       : std::string();
  };
  if (!opt_str("continuing_subword_prefix").empty() || !opt_str("end_of_word_suffix").empty())
    fail(ErrorKind::format,
         where + ": continuing_subword_prefix / end_of_word_suffix are not supported");
  if (spec.contains("dropout") && !spec["dropout"].is_null() && spec["dropout"].get<double>() > 0)
    fail(ErrorKind::format, where + ".dropout: BPE dropout is not supported for inference");
  m.byte_fallback_ = spec.value("byte_fallback", false);
  m.fuse_unk_ = spec.value("fuse_unk", false);
  m.ignore_merges_ = spec.value("ignore_merges", false);

  const auto& vocab = spec.at("vocab");
  if (!vocab.is_object()) fail(ErrorKind::format, where + ".vocab is not an object");
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    max_id =
        std::max(max_id, token_id_from_json(it.value(), where + ".vocab[\"" + it.key() + "\"]"));
  m.id_to_token_.assign(size_t(max_id + 1), std::string());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = it.value().get<int32_t>();  // checked above
    m.id_to_token_[size_t(id)] = it.key();
    m.file_vocab_.emplace(it.key(), id);
    if (byte_level) {
      if (auto bytes = chars_to_bytes(it.key())) m.vocab_.emplace(*bytes, id);
    } else {
      m.vocab_.emplace(it.key(), id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string key(1, char(b));
    auto it = m.vocab_.find(key);
    m.byte_ids_[b] = it == m.vocab_.end() ? -1 : it->second;
    char fb[8];
    std::snprintf(fb, sizeof fb, "<0x%02X>", b);
    auto jt = m.file_vocab_.find(fb);
    m.byte_fallback_ids_[b] = jt == m.file_vocab_.end() ? -1 : jt->second;
  }
  std::string unk = opt_str("unk_token");
  if (!unk.empty()) {
    auto it = m.file_vocab_.find(unk);
    if (it == m.file_vocab_.end())
      fail(ErrorKind::format, where + ".unk_token \"" + unk + "\" is not in the vocab");
    m.unk_id_ = it->second;
  }

  const auto& merges = spec.at("merges");
  m.merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    std::string w = where + ".merges[" + std::to_string(r) + "]";
    auto [a, b] = parse_merge(merges[r], w);
    auto ia = m.file_vocab_.find(a), ib = m.file_vocab_.find(b), ic = m.file_vocab_.find(a + b);
    if (ia == m.file_vocab_.end() || ib == m.file_vocab_.end() || ic == m.file_vocab_.end())
      fail(ErrorKind::format, w + ": token \"" +
                                  (ia == m.file_vocab_.end()   ? a
                                   : ib == m.file_vocab_.end() ? b
                                                               : a + b) +
                                  "\" is not in the vocab");
    // The first occurrence of a pair wins, as in the reference loader.
    m.merges_.emplace(pair_key(ia->second, ib->second), Merge{int32_t(r), ic->second});
  }
  return m;
}

int32_t Bpe::lookup_token(std::string_view token) const {
  auto it = file_vocab_.find(token);
  return it == file_vocab_.end() ? -1 : it->second;
}

bool Bpe::all_bytes_have_fallback(std::string_view ch) const {
  // The reference falls back to bytes only if every byte of the character has a <0xXX> token.
  for (unsigned char c : ch)
    if (byte_fallback_ids_[c] < 0) return false;
  return true;
}

void Bpe::initial_symbols(std::string_view piece, std::vector<int32_t>& syms) const {
  syms.clear();
  // Units are bytes for byte-level models, characters otherwise. An unknown unit's <unk> is held
  // back and only emitted before the next vocabulary unit (or at the end) — byte-fallback tokens
  // do not flush it. This mirrors the reference's merge_word.
  bool pending_unk = false;
  for (size_t i = 0; i < piece.size();) {
    size_t n = 1;
    int32_t id = -1;
    if (byte_level_) {
      id = byte_ids_[static_cast<unsigned char>(piece[i])];
    } else {
      uint32_t cp;
      int len = utf8_decode(piece, i, &cp);
      n = len > 0 ? size_t(len) : 1;
      auto it = vocab_.find(piece.substr(i, n));
      if (it != vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      if (pending_unk) syms.push_back(unk_id_), pending_unk = false;
      syms.push_back(id);
    } else if (byte_fallback_ && all_bytes_have_fallback(piece.substr(i, n))) {
      for (size_t k = 0; k < n; ++k)
        syms.push_back(byte_fallback_ids_[static_cast<unsigned char>(piece[i + k])]);
    } else if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) syms.push_back(unk_id_);
      pending_unk = true;
    }
    i += n;
  }
  if (pending_unk) syms.push_back(unk_id_);
}

void Bpe::merge_all(std::vector<int32_t>& syms) const {
  const size_t n = syms.size();
  if (n < 2) return;
  thread_local std::vector<int32_t> prev, next;
  prev.resize(n);
  next.resize(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = int32_t(i) - 1;
    next[i] = i + 1 < n ? int32_t(i + 1) : -1;
  }
  // Heap entries: (rank, left position, left id, right id); stale entries are skipped on pop.
  struct Cand {
    int32_t rank, pos, left, right, merged;
  };
  // std::*_heap builds a max-heap, so "less" means "merges later".
  auto later = [](const Cand& a, const Cand& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  thread_local std::vector<Cand> heap;
  thread_local std::vector<char> dead;
  heap.clear();
  dead.assign(n, 0);
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[size_t(pos)] < 0) return;
    int32_t l = syms[size_t(pos)], r = syms[size_t(next[size_t(pos)])];
    auto it = merges_.find(pair_key(l, r));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, pos, l, r, it->second.new_id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Cand c = heap.back();
    heap.pop_back();
    size_t p = size_t(c.pos);
    if (dead[p] || syms[p] != c.left) continue;
    int32_t nx = next[p];
    if (nx < 0 || syms[size_t(nx)] != c.right) continue;
    // Merge p and nx into p.
    syms[p] = c.merged;
    dead[size_t(nx)] = 1;
    next[p] = next[size_t(nx)];
    if (next[p] >= 0) prev[size_t(next[p])] = int32_t(p);
    if (prev[p] >= 0) push(prev[p]);
    push(int32_t(p));
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) syms[w++] = syms[size_t(i)];
  syms.resize(w);
}

void Bpe::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Natural text repeats its words, so short pieces are cached per thread (as the reference
  // library does). The cache belongs to one Bpe instance at a time.
  struct Cache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
  };
  thread_local Cache cache;
  constexpr size_t kMaxCachedPiece = 48, kMaxEntries = 1 << 16;
  bool cacheable = piece.size() <= kMaxCachedPiece;
  if (cacheable) {
    if (cache.owner != instance_) {
      cache.words.clear();
      cache.owner = instance_;
    }
    auto it = cache.words.find(piece);
    if (it != cache.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<int32_t> syms;
  initial_symbols(piece, syms);
  merge_all(syms);
  out.insert(out.end(), syms.begin(), syms.end());
  if (cacheable) {
    if (cache.words.size() >= kMaxEntries) cache.words.clear();
    cache.words.emplace(std::string(piece), syms);
  }
}

}  // namespace tern::tokenizer
