#include "train/data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/random.h"
#include "formats/atomic_file.h"
#include "formats/text_file.h"

namespace tern::train {
namespace fs = std::filesystem;

CorpusSpec parse_corpus_spec(const std::string& arg) {
  CorpusSpec s{arg, 1.0};
  const size_t colon = arg.rfind(':');
  if (colon != std::string::npos && colon + 1 < arg.size()) {
    const std::string w = arg.substr(colon + 1);
    char* end = nullptr;
    const double v = std::strtod(w.c_str(), &end);
    const bool numeric = end && *end == '\0';
    if (numeric) {
      if (!(v > 0) || !std::isfinite(v))
        fail(ErrorKind::request, "--data '" + arg +
                                     "': the weight after ':' must be a positive "
                                     "number");
      s.path = arg.substr(0, colon);
      s.weight = v;
    } else if (!fs::exists(arg)) {
      fail(ErrorKind::request, "--data '" + arg + "': '" + w +
                                   "' after ':' is not a weight (expected FILE or FILE:WEIGHT)");
    }
  }
  return s;
}

std::vector<std::string> split_documents(std::string_view text, const std::string& sep) {
  std::vector<std::string> docs;
  auto push = [&](std::string_view d) {
    const size_t b = d.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return;
    const size_t e = d.find_last_not_of(" \t\r\n");
    docs.emplace_back(d.substr(b, e - b + 1));
  };
  if (!sep.empty()) {
    size_t pos = 0;
    for (size_t hit; (hit = text.find(sep, pos)) != std::string_view::npos; pos = hit + sep.size())
      push(text.substr(pos, hit - pos));
    push(text.substr(pos));
    return docs;
  }
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      push(text.substr(start, pos - start));
      start = eol + 1;
    }
    pos = eol + 1;
  }
  if (start < text.size()) push(text.substr(start));
  return docs;
}

int32_t TokenSplit::doc_of(int64_t p) const {
  const int64_t* it = std::upper_bound(doc_starts, doc_starts + n_docs, p);
  return int32_t(it - doc_starts) - 1;
}

namespace {

template <class T>
void write_array(const std::string& path, const std::vector<T>& v) {
  formats::AtomicFile f(path);
  f.write(v.data(), v.size() * sizeof(T));
  f.commit();
}

TokenSplit map_split(const std::string& stem) {
  TokenSplit s;
  s.tokens_file = formats::MappedFile::open(stem + ".tokens");
  s.starts_file = formats::MappedFile::open(stem + ".starts");
  if (s.tokens_file->size() % 4 || s.starts_file->size() % 8)
    fail(ErrorKind::format, stem + ".tokens/.starts: truncated token file");
  s.tokens = reinterpret_cast<const int32_t*>(s.tokens_file->data());
  s.n_tokens = int64_t(s.tokens_file->size() / 4);
  s.doc_starts = reinterpret_cast<const int64_t*>(s.starts_file->data());
  s.n_docs = int64_t(s.starts_file->size() / 8);
  return s;
}

std::string unique_name(const std::string& path, std::set<std::string>& used) {
  std::string base = fs::path(path).stem().string();
  if (base.empty()) base = "corpus";
  std::string name = base;
  for (int i = 2; used.count(name); ++i) name = base + "-" + std::to_string(i);
  used.insert(name);
  return name;
}

}  // namespace

std::vector<Corpus> prepare_corpora(const std::vector<CorpusSpec>& specs,
                                    const tokenizer::Tokenizer& tok, const std::string& data_dir,
                                    const PrepareOptions& opts) {
  if (specs.empty()) fail(ErrorKind::request, "no --data corpus given");
  fs::create_directories(data_dir);
  const int32_t bos = tok.bos_id(), eos = tok.eos_id();
  if (bos < 0 || eos < 0)
    fail(ErrorKind::request,
         "the tokenizer defines no BOS/EOS token; training marks documents "
         "with them");
  std::vector<Corpus> out;
  std::set<std::string> used;
  for (const CorpusSpec& spec : specs) {
    const std::string text = formats::read_text_file(spec.path);
    const std::vector<std::string> docs = split_documents(text, opts.doc_sep);
    if (docs.empty())
      fail(ErrorKind::request, "corpus '" + spec.path + "' is empty (no document in it)");
    const auto ids = tok.encode_batch(docs, false);
    // The validation tail: the last val_fraction of documents, when there are at least two.
    const int64_t n_docs = int64_t(docs.size());
    const int64_t n_val =
        n_docs < 2 ? 0
                   : std::clamp<int64_t>(int64_t(std::llround(opts.val_fraction * double(n_docs))),
                                         1, n_docs - 1);
    Corpus c;
    c.name = unique_name(spec.path, used);
    c.weight = spec.weight;
    for (int split = 0; split < 2; ++split) {
      std::vector<int32_t> tokens;
      std::vector<int64_t> starts;
      const int64_t b = split == 0 ? 0 : n_docs - n_val, e = split == 0 ? n_docs - n_val : n_docs;
      for (int64_t d = b; d < e; ++d) {
        starts.push_back(int64_t(tokens.size()));
        tokens.push_back(bos);
        tokens.insert(tokens.end(), ids[size_t(d)].begin(), ids[size_t(d)].end());
        tokens.push_back(eos);
      }
      const std::string stem =
          (fs::path(data_dir) / (c.name + (split ? ".val" : ".train"))).string();
      write_array(stem + ".tokens", tokens);
      write_array(stem + ".starts", starts);
      (split ? c.val : c.train) = map_split(stem);
    }
    out.push_back(std::move(c));
  }
  return out;
}

nlohmann::json corpora_manifest(const std::vector<Corpus>& corpora) {
  nlohmann::json j = nlohmann::json::array();
  for (const Corpus& c : corpora)
    j.push_back({{"name", c.name},
                 {"weight", c.weight},
                 {"train_tokens", c.train.n_tokens},
                 {"val_tokens", c.val.n_tokens},
                 {"train_documents", c.train.n_docs},
                 {"val_documents", c.val.n_docs}});
  return j;
}

std::vector<Corpus> open_corpora(const nlohmann::json& manifest, const std::string& data_dir) {
  std::vector<Corpus> out;
  for (const auto& m : manifest) {
    Corpus c;
    c.name = m.at("name").get<std::string>();
    c.weight = m.at("weight").get<double>();
    c.train = map_split((fs::path(data_dir) / (c.name + ".train")).string());
    c.val = map_split((fs::path(data_dir) / (c.name + ".val")).string());
    if (c.train.n_tokens != m.at("train_tokens").get<int64_t>())
      fail(ErrorKind::format,
           data_dir + "/" + c.name + ".train.tokens: " + std::to_string(c.train.n_tokens) +
               " tokens, the run recorded " + std::to_string(m.at("train_tokens").get<int64_t>()));
    out.push_back(std::move(c));
  }
  return out;
}

WindowSampler::WindowSampler(const std::vector<Corpus>* corpora, int64_t T, int64_t S,
                             uint64_t seed)
    : corpora_(corpora), T_(T), S_(S), seed_(seed) {
  const size_t n = corpora->size();
  cursor_.assign(n, 0);
  perm_epoch_.assign(n, -1);
  perm_.resize(n);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (windows(i) <= 0)
      fail(ErrorKind::request,
           "corpus '" + (*corpora)[i].name + "' has " +
               std::to_string((*corpora)[i].train.n_tokens) +
               " training tokens, fewer than one window of --seq + MTP depth = " +
               std::to_string(S) + " tokens");
    total += (*corpora)[i].weight;
    cumulative_.push_back(total);
  }
  for (double& c : cumulative_) c /= total;
}

int64_t WindowSampler::windows(size_t c) const {
  const int64_t n = (*corpora_)[c].train.n_tokens;
  return n < S_ ? 0 : (n - S_) / T_ + 1;
}

int64_t WindowSampler::window_start(size_t c, int64_t j) {
  const int64_t n = windows(c), epoch = j / n;
  if (perm_epoch_[c] != epoch) {
    // Fisher-Yates from the counter-based generator, keyed by (seed, corpus, epoch).
    std::vector<int64_t>& p = perm_[c];
    p.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i;
    const uint64_t stream =
        rng::stream_id("train.shuffle." + (*corpora_)[c].name) + uint64_t(epoch);
    for (int64_t i = n - 1; i > 0; --i) {
      const int64_t k = int64_t(rng::uniform_double(seed_, stream, uint64_t(i)) * double(i + 1));
      std::swap(p[size_t(i)], p[size_t(std::min(k, i))]);
    }
    perm_epoch_[c] = epoch;
  }
  return perm_[c][size_t(j % n)] * T_;
}

void WindowSampler::next(int32_t* tokens, int32_t* docs) {
  const double u = rng::uniform_double(seed_, rng::stream_id("train.corpus"), samples_);
  size_t c = 0;
  while (c + 1 < cumulative_.size() && u >= cumulative_[c]) ++c;
  const TokenSplit& s = (*corpora_)[c].train;
  const int64_t start = window_start(c, cursor_[c]++);
  std::copy_n(s.tokens + start, S_, tokens);
  for (int64_t i = 0; i < S_; ++i) docs[i] = s.doc_of(start + i);
  ++samples_;
}

nlohmann::json WindowSampler::state() const {
  return {{"samples", samples_}, {"cursors", cursor_}};
}

void WindowSampler::restore(const nlohmann::json& j) {
  const auto cursors = j.at("cursors").get<std::vector<int64_t>>();
  if (cursors.size() != cursor_.size())
    fail(ErrorKind::format, "trainer_state.json: data.cursors has " +
                                std::to_string(cursors.size()) + " entries for " +
                                std::to_string(cursor_.size()) + " corpora");
  cursor_ = cursors;
  samples_ = j.at("samples").get<uint64_t>();
}

ValWindows validation_windows(const std::vector<Corpus>& corpora, int64_t S, int64_t limit) {
  ValWindows v;
  for (const Corpus& c : corpora)
    for (int64_t start = 0; start + S <= c.val.n_tokens && v.n < limit; start += S, ++v.n) {
      v.tokens.insert(v.tokens.end(), c.val.tokens + start, c.val.tokens + start + S);
      for (int64_t i = 0; i < S; ++i) v.docs.push_back(c.val.doc_of(start + i));
    }
  return v;
}

}  // namespace tern::train
