// BPE training with incremental pair counts: each merge touches only the words that contain the
// merged pair (an index from pair to words), and a lazy max-heap picks the next pair, so a 4 MB
// corpus trains in seconds. Words are counted in parallel chunks merged in chunk order.
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer {

nlohmann::ordered_json deepseek_v3_pre_tokenizer() {
  auto split = [](const std::string& re) {
    return nlohmann::ordered_json{{"type", "Split"},
                                  {"pattern", {{"Regex", re}}},
                                  {"behavior", "Isolated"},
                                  {"invert", false}};
  };
  return {{"type", "Sequence"},
          {"pretokenizers",
           {split("\\p{N}{1,3}"),
            split("[一-龥぀-ゟ゠-ヿ]+"),
            split("[!\"#$%&'()*+,\\-./"
                  ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
                  "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
            {{"type", "ByteLevel"},
             {"add_prefix_space", false},
             {"trim_offsets", true},
             {"use_regex", false}}}}};
}

namespace {

using WordCounts = std::unordered_map<std::string, int64_t>;

WordCounts count_words(const std::vector<std::string>& texts, const PreTokenizer& pre) {
  // Split documents into ~1 MB chunks at line ends so threads get balanced work.
  std::vector<std::string_view> chunks;
  for (const std::string& t : texts) {
    std::string_view rest(t);
    while (!rest.empty()) {
      size_t cut = std::min(rest.size(), size_t(1) << 20);
      size_t nl = rest.find('\n', cut);
      cut = nl == std::string_view::npos ? rest.size() : nl + 1;
      chunks.push_back(rest.substr(0, cut));
      rest.remove_prefix(cut);
    }
  }
  std::vector<WordCounts> partial(chunks.size());
  ThreadPool::global().parallel_for(int64_t(chunks.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t c = b; c < e; ++c) {
      PieceBuffer buf;
      std::string valid = utf8_lossy(chunks[size_t(c)]);
      buf.pieces.push_back(valid);
      pre.apply(buf);
      for (std::string_view p : buf.pieces) ++partial[size_t(c)][std::string(p)];
    }
  });
  WordCounts all;
  for (auto& p : partial)
    for (auto& [w, n] : p) all[w] += n;
  return all;
}

uint64_t key(int32_t a, int32_t b) {
  return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
}

}  // namespace

void validate(const BpeTrainOptions& opts) {
  if (opts.bos_token.empty()) fail(ErrorKind::request, "--bos must not be empty");
  if (opts.eos_token.empty()) fail(ErrorKind::request, "--eos must not be empty");
  if (opts.bos_token == opts.eos_token)
    fail(ErrorKind::request, "--bos and --eos must differ, both are '" + opts.bos_token + "'");
  for (size_t i = 0; i < opts.special_tokens.size(); ++i) {
    const std::string& t = opts.special_tokens[i];
    if (t.empty()) fail(ErrorKind::request, "--special: a special token must not be empty");
    if (t == opts.bos_token || t == opts.eos_token ||
        std::find(opts.special_tokens.begin(), opts.special_tokens.begin() + long(i), t) !=
            opts.special_tokens.begin() + long(i))
      fail(ErrorKind::request, "--special: '" + t + "' is given twice");
  }
  if (opts.min_frequency < 1)
    fail(ErrorKind::request,
         "--min-frequency must be at least 1, got " + std::to_string(opts.min_frequency));
  if (opts.vocab_size > size_t(INT32_MAX))
    fail(ErrorKind::request,
         "--vocab-size " + std::to_string(opts.vocab_size) + " does not fit 32-bit token ids");
}

BpeTrainResult train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& opts) {
  validate(opts);
  BpeTrainResult r;
  for (const auto& t : texts) r.corpus_bytes += t.size();
  if (r.corpus_bytes == 0) fail(ErrorKind::request, "the corpus is empty: nothing to train on");
  std::vector<std::string> specials = {opts.bos_token, opts.eos_token};
  for (const auto& s : opts.special_tokens)
    if (std::find(specials.begin(), specials.end(), s) == specials.end()) specials.push_back(s);
  if (opts.vocab_size < specials.size() + 256)
    fail(ErrorKind::request, "--vocab-size " + std::to_string(opts.vocab_size) + " is below the " +
                                 std::to_string(specials.size() + 256) +
                                 " special and byte tokens");
  nlohmann::ordered_json pre_json =
      opts.pre_tokenizer.is_null() ? deepseek_v3_pre_tokenizer() : opts.pre_tokenizer;
  PreTokenizer pre =
      PreTokenizer::from_json(nlohmann::json::parse(pre_json.dump()), "pre_tokenizer");
  if (!pre.byte_level())
    fail(ErrorKind::config, "pre_tokenizer: the trainer needs a ByteLevel step");

  // Words in a fixed order (sorted) so ids and tie-breaks never depend on hashing.
  WordCounts counts = count_words(texts, pre);
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  r.unique_words = sorted.size();

  // Token table: byte b has id b until specials are prepended at the end.
  std::vector<std::string> tok_bytes(256);
  for (int b = 0; b < 256; ++b) tok_bytes[size_t(b)] = std::string(1, char(b));
  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<int64_t> freq(sorted.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (size_t w = 0; w < sorted.size(); ++w) {
    freq[w] = sorted[w].second;
    for (unsigned char c : sorted[w].first) words[w].push_back(c);
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      uint64_t k = key(words[w][i], words[w][i + 1]);
      pair_count[k] += freq[w];
      where[k].push_back(uint32_t(w));
    }
  }
  struct Cand {
    int64_t count;
    uint64_t pair;
    bool operator<(const Cand& o) const {
      return count != o.count ? count < o.count : pair > o.pair;
    }
  };
  std::vector<Cand> heap;
  for (auto& [k, n] : pair_count) heap.push_back({n, k});
  std::make_heap(heap.begin(), heap.end());

  std::vector<std::pair<int32_t, int32_t>> merges;
  size_t target_merges = opts.vocab_size - specials.size() - 256;
  std::unordered_map<uint64_t, int64_t> delta;
  // The shared progress display: a bar on a terminal, plain periodic lines in logs.
  std::optional<Progress> progress;
  if (opts.progress) progress.emplace("training BPE", int64_t(target_merges), "merges");
  while (merges.size() < target_merges && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Cand c = heap.back();
    heap.pop_back();
    auto it = pair_count.find(c.pair);
    int64_t now = it == pair_count.end() ? 0 : it->second;
    if (now != c.count) {  // stale entry: re-queue with the current count
      if (now > 0) {
        heap.push_back({now, c.pair});
        std::push_heap(heap.begin(), heap.end());
      }
      continue;
    }
    if (now < opts.min_frequency) break;
    int32_t a = int32_t(c.pair >> 32), b = int32_t(c.pair & 0xffffffffu);
    int32_t nid = int32_t(tok_bytes.size());
    tok_bytes.push_back(tok_bytes[size_t(a)] + tok_bytes[size_t(b)]);
    merges.emplace_back(a, b);
    delta.clear();
    std::vector<uint32_t> ws = std::move(where[c.pair]);
    where.erase(c.pair);
    std::sort(ws.begin(), ws.end());
    ws.erase(std::unique(ws.begin(), ws.end()), ws.end());
    for (uint32_t w : ws) {
      auto& s = words[w];
      std::vector<int32_t> out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          // Replace (x a)(a b)(b y) by (x n)(n y).
          if (!out.empty())
            delta[key(out.back(), a)] -= freq[w], delta[key(out.back(), nid)] += freq[w];
          if (i + 2 < s.size())
            delta[key(b, s[i + 2])] -= freq[w], delta[key(nid, s[i + 2])] += freq[w];
          out.push_back(nid);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s.swap(out);
      for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == nid || s[i + 1] == nid) where[key(s[i], s[i + 1])].push_back(w);
    }
    pair_count.erase(c.pair);
    // Apply count changes in key order so the heap contents are deterministic.
    std::vector<std::pair<uint64_t, int64_t>> changes(delta.begin(), delta.end());
    std::sort(changes.begin(), changes.end());
    for (auto [k, d] : changes) {
      if (d == 0 || k == c.pair) continue;
      int64_t& n = pair_count[k];
      n += d;
      if (n <= 0) {
        pair_count.erase(k);
      } else if (d > 0) {
        heap.push_back({n, k});
        std::push_heap(heap.begin(), heap.end());
      }
    }
    if (progress) progress->advance();
  }
  if (progress) progress->finish();
  r.merges = merges.size();

  // tokenizer.json: specials take ids 0..k-1, then bytes, then merged tokens.
  const int32_t off = int32_t(specials.size());
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t i = 0; i < specials.size(); ++i) vocab[specials[i]] = int32_t(i);
  for (size_t t = 0; t < tok_bytes.size(); ++t)
    vocab[bytes_to_chars(tok_bytes[t])] = int32_t(t) + off;
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  for (auto [a, b] : merges)
    merge_list.push_back(
        {bytes_to_chars(tok_bytes[size_t(a)]), bytes_to_chars(tok_bytes[size_t(b)])});
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (size_t i = 0; i < specials.size(); ++i)
    added.push_back(added_token_json<nlohmann::ordered_json>(int64_t(i), specials[i], true));
  nlohmann::ordered_json post = {{"type", "ByteLevel"},
                                 {"add_prefix_space", false},
                                 {"trim_offsets", false},
                                 {"use_regex", false}};
  if (opts.add_bos) post = bos_template_json<nlohmann::ordered_json>(opts.bos_token, 0);
  r.tokenizer_json = byte_level_bpe_json<nlohmann::ordered_json>(vocab, merge_list, added, nullptr,
                                                                 pre_json, post);
  // PreTrainedTokenizerFast keeps tokenizer.json's post-processor, so transformers, the Rust
  // library and tern all add BOS the same way.
  r.tokenizer_config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                        {"bos_token", opts.bos_token},
                        {"eos_token", opts.eos_token},
                        {"pad_token", opts.eos_token},
                        {"clean_up_tokenization_spaces", false},
                        {"model_max_length", 131072}};
  return r;
}

BpeTrainResult train_bpe_files(const std::vector<std::string>& paths, const BpeTrainOptions& opts) {
  std::vector<std::string> texts;
  for (const auto& p : paths) {
    std::ifstream f(p, std::ios::binary);
    if (!f) fail(ErrorKind::io, p + ": cannot open corpus file");
    std::ostringstream ss;
    ss << f.rdbuf();
    texts.push_back(ss.str());
  }
  return train_bpe(texts, opts);
}

void save_trained(const BpeTrainResult& r, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(ErrorKind::io, dir + ": cannot create directory: " + ec.message());
  for (auto [name, j] : {std::pair{"tokenizer.json", &r.tokenizer_json},
                         std::pair{"tokenizer_config.json", &r.tokenizer_config}}) {
    std::string path = dir + "/" + name, tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary);
      f << j->dump(2, ' ', false) << "\n";
      if (!f) fail(ErrorKind::io, tmp + ": write failed");
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) fail(ErrorKind::io, path + ": cannot rename: " + ec.message());
  }
}

}  // namespace tern::tokenizer
